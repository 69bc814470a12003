"""A bundle, rendered for the groups it goes to: what the controller publishes.

`Bundle.plan(group)` answers, for one group, which ordered targets and which
variants its manifest carries. Each distinct set of effective options is
rendered once (memoized by its canonical digest), and variants that render
to the same content share one deployment id. A render failure anywhere
raises before anything is returned, so nothing is ever half published.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from controller import customizing, errors, fleetyaml, helm, rendering, targeting
from wire import canonical, manifests, selectors


@dataclass(frozen=True)
class Plan:
    """One group's share of a bundle; empty targets mean the group is not targeted."""

    group: targeting.Group
    targets: tuple[manifests.Target, ...]
    variants: tuple[manifests.Variant, ...]

    def manifest(self, bundle: str, *, generation: int, issued_at: float) -> manifests.Manifest:
        return manifests.Manifest(
            manifests.Kind.BUNDLE, bundle, self.group.name, generation, issued_at, self.targets, self.variants
        )


@dataclass(frozen=True)
class ClusterView:
    """What one cluster with given name and labels gets from a bundle."""

    selection: selectors.Selection
    variant: manifests.Variant | None


@dataclass
class Bundle:
    spec: fleetyaml.BundleSpec
    cache: helm.ChartCache
    _rendered: dict[str, manifests.Variant] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def options(self, index: int | None) -> fleetyaml.Options:
        """Effective options of the base (None) or of customization `index`."""
        if index is None:
            return self.spec.options
        return customizing.merge(self.spec.options, self.spec.customizations[index].options)

    def target_name(self, index: int | None) -> str:
        return "base" if index is None else self.spec.customizations[index].name

    def variant(self, index: int | None) -> manifests.Variant:
        options = self.options(index)
        key = canonical.digest(dataclasses.asdict(options))
        if key not in self._rendered:
            self._rendered[key] = rendering.render(
                self.spec, options, target=self.target_name(index), cache=self.cache
            )
        return self._rendered[key]

    def plan(self, group: targeting.Group) -> Plan:
        if not targeting.where(self.spec, group):
            return Plan(group, (), ())
        indices = [targeting.BASE, *targeting.applicable(self.spec, group)]
        # First with stand-in ids, to learn which entries any cluster can reach: only
        # those are rendered (a base that no cluster gets may not even be renderable).
        stand_ins: dict[int | None, str | None] = {
            i: None if i is not None and self.spec.customizations[i].do_not_deploy else f"#{i}"
            for i in indices
        }
        reachable = {t.deployment_id for t in targeting.compile_targets(self.spec, group, stand_ins)}
        deployments = dict(stand_ins)
        variants: dict[str, manifests.Variant] = {}
        for index, stand_in in stand_ins.items():
            if stand_in is not None and stand_in in reachable:
                variant = self.variant(index)
                deployments[index] = variant.deployment_id
                variants.setdefault(variant.deployment_id, variant)
        targets = targeting.compile_targets(self.spec, group, deployments)
        used = {t.deployment_id for t in targets if t.deployment_id is not None}
        return Plan(group, targets, tuple(variants[d] for d in sorted(used)))

    def for_cluster(self, group: targeting.Group, *, cluster: str, labels: Mapping[str, str]) -> ClusterView:
        plan = self.plan(group)
        selection = selectors.select(plan.targets, cluster=cluster, labels=labels)
        if selection.deployment_id is None:
            return ClusterView(selection, None)
        variant = next(v for v in plan.variants if v.deployment_id == selection.deployment_id)
        return ClusterView(selection, variant)

    def all_variants(self) -> list[tuple[str, manifests.Variant | errors.BundleError | None]]:
        """The base and every customization (None for doNotDeploy), or why it does not render."""
        result: list[tuple[str, manifests.Variant | errors.BundleError | None]] = []
        for index in [None, *range(len(self.spec.customizations))]:
            if index is not None and self.spec.customizations[index].do_not_deploy:
                result.append((self.target_name(index), None))
                continue
            try:
                result.append((self.target_name(index), self.variant(index)))
            except errors.BundleError as exc:
                result.append((self.target_name(index), exc))
        return result


@contextmanager
def open_bundle(directory: Path) -> Iterator[Bundle]:
    """Read `directory` as a bundle; downloads live until the block exits."""
    spec = fleetyaml.read(directory)
    with tempfile.TemporaryDirectory(prefix="edgefleet-charts-") as tmp:
        yield Bundle(spec, helm.ChartCache(Path(tmp)))
