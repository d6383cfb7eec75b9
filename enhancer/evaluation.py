"""Intent preservation of an enhancer on a prompt set, measured on the rewrites themselves (before
fallback: after fallback every prompt trivially keeps its intent).

Per prompt, the cleaned rewrite is parsed by the world parser and compared with the user's prompt
(`enhancer.intent`). Reported: the share of rewrites that keep every user-stated attribute with
no contradiction, the share of user-stated attributes kept, contradictions, format failures,
backend failures, how many rewrites state all six attributes (what the detailed register the
generator renders best looks like), and latency.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from enhancer.prompt_enhancer import EnhancedPrompt, EnhancerConfig, PromptEnhancer
from vpt.prompt_rewriting import RewriteLimits, check_intent, format_problem
from vpt.world import parse_prompt


@dataclass
class IntentReport:
    """Counts over a prompt set."""

    limits: RewriteLimits = field(default_factory=RewriteLimits)
    """Format limits the rewrites are judged against."""
    prompts: int = 0
    """Prompts enhanced."""
    preserved: int = 0
    """Rewrites that keep every user-stated attribute and contradict nothing."""
    accepted: int = 0
    """Rewrites the enhancer used (preserved and within the format limits)."""
    contradicted: int = 0
    """Rewrites that state a user attribute differently or contradict themselves."""
    format_failures: int = 0
    """Rewrites outside the format/length limits."""
    backend_failures: int = 0
    """Prompts with no rewrite at all (timeout or backend error)."""
    attributes_stated: int = 0
    """User-stated attributes, summed over prompts."""
    attributes_kept: int = 0
    """Of those, the ones the rewrite states with the same value."""
    complete: int = 0
    """Rewrites stating all six attributes, cleanly (no unknown word, no conflict)."""
    words: int = 0
    """Words in all rewrites."""
    seconds: float = 0.0
    """Wall time of all enhance calls."""
    examples: list[dict[str, Any]] = field(default_factory=list)
    """The first few (user prompt, rewrite, verdict) triples."""

    @property
    def preservation_rate(self) -> float:
        """Share of prompts whose rewrite keeps the user's intent."""
        return self.preserved / self.prompts if self.prompts else float("nan")

    @property
    def attribute_keep_rate(self) -> float:
        """Share of user-stated attributes kept by the rewrites."""
        return self.attributes_kept / self.attributes_stated if self.attributes_stated else 1.0

    def summary(self) -> dict[str, Any]:
        """Plain numbers for JSON."""
        n = max(self.prompts, 1)
        return {
            "prompts": self.prompts,
            "preservation_rate": self.preservation_rate,
            "attribute_keep_rate": self.attribute_keep_rate,
            "accepted_rate": self.accepted / n,
            "contradiction_rate": self.contradicted / n,
            "format_failure_rate": self.format_failures / n,
            "backend_failure_rate": self.backend_failures / n,
            "complete_rate": self.complete / n,
            "mean_words": self.words / max(self.prompts - self.backend_failures, 1),
            "seconds_per_prompt": self.seconds / n,
            "counts": {
                "preserved": self.preserved,
                "accepted": self.accepted,
                "contradicted": self.contradicted,
                "format_failures": self.format_failures,
                "backend_failures": self.backend_failures,
                "attributes_stated": self.attributes_stated,
                "attributes_kept": self.attributes_kept,
                "complete": self.complete,
            },
        }

    def add(self, result: EnhancedPrompt, examples: int) -> None:
        """Count one enhanced prompt."""
        self.prompts += 1
        if result.rewrite is None:
            self.backend_failures += 1
            self.attributes_stated += len(parse_prompt(result.user_prompt).attributes.mentioned)
            return
        intent = check_intent(result.user_prompt, result.rewrite)
        self.attributes_stated += len(intent.user.mentioned)
        self.attributes_kept += len(intent.kept)
        self.preserved += intent.is_preserved
        self.contradicted += bool(intent.contradicted or intent.conflicts)
        self.accepted += not result.fell_back
        self.words += len(result.rewrite.split())
        problem = format_problem(result.rewrite, self.limits)
        self.format_failures += problem is not None
        parsed = parse_prompt(result.rewrite)
        self.complete += parsed.attributes.is_complete and parsed.is_clean
        if len(self.examples) < examples:
            self.examples.append(
                {
                    "user": result.user_prompt,
                    "rewrite": result.rewrite,
                    "used": result.prompt,
                    "reason": result.reason,
                }
            )


def evaluate_intent(
    enhancer: PromptEnhancer, prompts: Sequence[str], batch_size: int = 8, examples: int = 10
) -> IntentReport:
    """Enhance `prompts` in batches and count how well intent survives."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    report = IntentReport(limits=enhancer.config.limits)
    for start in range(0, len(prompts), batch_size):
        started = time.monotonic()
        results = enhancer.enhance_batch(list(prompts[start : start + batch_size]))
        report.seconds += time.monotonic() - started
        for result in results:
            report.add(result, examples)
    return report


def add_resample_options(parser: argparse.ArgumentParser) -> None:
    """`--resample-attempts` and `--sampling-seed`, for the benchmarks that run an enhancer."""
    parser.add_argument(
        "--resample-attempts",
        type=int,
        default=EnhancerConfig.resample_attempts,
        help="sampled re-asks after a rejected rewrite (0: one greedy rewrite; the figures "
        "docs/enhancer.md gives before its section on resampling were measured so)",
    )
    parser.add_argument(
        "--sampling-seed", type=int, default=0, help="torch seed of the resampled rewrites"
    )
