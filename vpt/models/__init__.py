"""Model components: text encoder, video autoencoder, flow-matching transformer."""
