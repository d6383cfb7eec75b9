"""Training stages and the loop they share."""
