"""A summary of a repository's difference-imaging inputs.

What `recreate info` and `make run` print: instruments, bands, visits,
detectors, tracts and patches, dataset counts, and, for simulated
repositories, the preset, seed and per-detector template coverage.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from recreate.butler import TEMPLATE_COADD, VISIT_IMAGE


@dataclass(frozen=True)
class RepositorySummary:
    """Counts that describe a repository's difference-imaging inputs."""

    instruments: list[str]
    bands: list[str]
    visits: int
    detectors: int
    visit_images: int
    tracts: list[int]
    template_patches: int
    datasets: dict[str, int]
    simulation: dict[str, Any]

    def lines(self) -> list[str]:
        """Return a human-readable summary, one fact per line."""
        out = [
            f"instruments:      {', '.join(self.instruments)}",
            f"bands:            {', '.join(self.bands)}",
            f"visits:           {self.visits}",
            f"detectors:        {self.detectors}",
            f"visit_images:     {self.visit_images}",
            f"tracts:           {', '.join(map(str, self.tracts))}",
            f"template patches: {self.template_patches}",
            "datasets:         "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.datasets.items())),
        ]
        coverage = self.simulation.get("template_coverage")
        if coverage:
            out.append(f"template coverage: {_coverage_histogram(coverage)}")
        if "preset" in self.simulation:
            out.append(
                f"simulated:        preset {self.simulation['preset']!r}, "
                f"seed {self.simulation['seed']}"
            )
        return out


def _coverage_histogram(coverage: dict[str, float]) -> str:
    """Summarise per-detector template coverage in DP1's bins."""
    bins = Counter(
        "full"
        if f >= 0.999
        else "partial"
        if f >= 0.2
        else "<20%"
        if f >= 0.1
        else "<10%"
        for f in coverage.values()
    )
    return ", ".join(
        f"{bins[name]} {name}" for name in ("full", "partial", "<20%", "<10%")
    )


def summarize_repository(butler: Any) -> RepositorySummary:
    """Return counts of the visits, detectors, patches and datasets.

    Parameters
    ----------
    butler
        An open Butler (see `open_butler`).
    """
    registry = butler.registry
    datasets: dict[str, int] = {}
    templates: list[Any] = []
    for dataset_type in registry.queryDatasetTypes():
        refs = butler.query_datasets(
            dataset_type.name, explain=False, limit=None
        )
        datasets[dataset_type.name] = len(refs)
        if dataset_type.name == TEMPLATE_COADD:
            templates = refs
    simulation: dict[str, Any] = {}
    if datasets.get("simulation_config"):
        simulation = dict(butler.get("simulation_config"))
    return RepositorySummary(
        instruments=sorted(
            r.name for r in registry.queryDimensionRecords("instrument")
        ),
        bands=sorted(
            {
                str(r.band)
                for r in registry.queryDimensionRecords("physical_filter")
            }
        ),
        visits=sum(1 for _ in registry.queryDimensionRecords("visit")),
        detectors=sum(1 for _ in registry.queryDimensionRecords("detector")),
        visit_images=datasets.get(VISIT_IMAGE, 0),
        tracts=sorted({int(ref.dataId["tract"]) for ref in templates}),
        template_patches=len(templates),
        datasets=datasets,
        simulation=simulation,
    )
