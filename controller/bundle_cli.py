"""`edgefleet bundle render|inspect`: what a bundle gives a cluster, and how.

Output is for people (and `-o json` for scripts); the decisions come from
controller.bundles, exactly as `apply` will make them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from controller import bundles, errors, targeting
from wire import canonical, names
from wire import errors as wire_errors

DEFAULT_GROUP = "default"
DEFAULT_CLUSTER = "cluster"


def add_commands(commands: Any) -> Any:
    """Add `bundle render|inspect`; return the `bundle` action parsers for other commands."""
    bundle = commands.add_parser("bundle", help="read, render and inspect bundles")
    actions = bundle.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")

    render = actions.add_parser("render", help="print exactly what one cluster would get")
    render.add_argument("directory", type=Path)
    render.add_argument("--labels", default="", help="the cluster's labels, e.g. env=prod,region=us-west")
    render.add_argument("--cluster", default=DEFAULT_CLUSTER, help="the cluster's name (for clusterName)")
    _add_group(render)
    render.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    render.set_defaults(run=run_render)

    inspect = actions.add_parser("inspect", help="list targets and variants with sizes and deployment ids")
    inspect.add_argument("directory", type=Path)
    _add_group(inspect)
    inspect.set_defaults(run=run_inspect)
    return actions


def _add_group(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--group", default=DEFAULT_GROUP, help=f"the cluster's group (default {DEFAULT_GROUP!r})"
    )
    parser.add_argument("--group-labels", default="", help="the group's labels, for clusterGroupSelector")


def parse_labels(text: str, *, what: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise errors.ControllerError(f"{what}: {item!r} is not key=value")
        labels[key] = value
    return labels


def _group(args: argparse.Namespace) -> targeting.Group:
    try:
        name = names.group(args.group)
    except wire_errors.InvalidName as exc:
        raise errors.ControllerError(f"--group: {exc}") from exc
    return targeting.Group(name, parse_labels(args.group_labels, what="--group-labels"))


def _warn(bundle: bundles.Bundle) -> None:
    for warning in bundle.spec.warnings:
        print(f"edgefleet: warning: {warning}", file=sys.stderr)


def run_render(args: argparse.Namespace, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    labels = parse_labels(args.labels, what="--labels")
    group = _group(args)
    with bundles.open_bundle(args.directory) as bundle:
        _warn(bundle)
        view = bundle.for_cluster(group, cluster=args.cluster, labels=labels)
    variant = view.variant
    if args.output == "json":
        document: dict[str, Any] = {
            "bundle": bundle.name,
            "cluster": args.cluster,
            "group": group.name,
            "labels": labels,
            "deploy": variant is not None,
            "reason": view.selection.reason,
        }
        if variant is not None:
            document.update(
                target=view.selection.target,
                deployment_id=variant.deployment_id,
                namespace=variant.namespace,
                options=dict(variant.options),
                objects=[dict(o) for o in variant.objects],
            )
        json.dump(document, out, indent=2, sort_keys=False)
        out.write("\n")
        return
    shown = ",".join(f"{k}={v}" for k, v in labels.items()) or "no labels"
    out.write(f"# bundle {bundle.name} for cluster {args.cluster} ({shown}) in group {group.name}\n")
    if variant is None:
        out.write(f"# gets nothing: {view.selection.reason}\n")
        return
    out.write(f"# {view.selection.reason}\n")
    out.write(f"# deployment {variant.deployment_id}, default namespace {variant.namespace}")
    out.write(f", options {json.dumps(dict(variant.options), sort_keys=True)}\n" if variant.options else "\n")
    yaml.safe_dump_all([dict(o) for o in variant.objects], out, sort_keys=False, explicit_start=True)


def _describe(selector: Any) -> str:
    if selector is None:
        return ""
    parts = [f"{k}={v}" for k, v in selector.match_labels.items()]
    parts += [
        f"{r.key} {r.operator} ({','.join(r.values)})" if r.values else f"{r.key} {r.operator}"
        for r in selector.match_expressions
    ]
    return "{" + ", ".join(parts) + "}"


def run_inspect(args: argparse.Namespace, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    group = _group(args)
    with bundles.open_bundle(args.directory) as bundle:
        _warn(bundle)
        variants = bundle.all_variants()
        plan = bundle.plan(group)
    out.write(f"bundle {bundle.name} ({args.directory})\n\nvariants:\n")
    for name, variant in variants:
        if variant is None:
            out.write(f"  {name:<24} doNotDeploy\n")
            continue
        if isinstance(variant, errors.BundleError):
            out.write(f"  {name:<24} does not render: {variant}\n")
            continue
        size = len(canonical.encode(list(variant.objects)))
        out.write(
            f"  {name:<24} {variant.deployment_id[:12]}  namespace {variant.namespace:<12} "
            f"{len(variant.objects):>3} objects  {size:>8,} bytes\n"
        )
    labels = ",".join(f"{k}={v}" for k, v in group.labels.items()) or "no labels"
    out.write(f"\ntargets in group {group.name} ({labels}), first match wins:\n")
    if not plan.targets:
        out.write("  none: this group is not targeted\n")
    for number, target in enumerate(plan.targets, 1):
        criteria = []
        if target.cluster_name:
            criteria.append(f"clusterName={target.cluster_name}")
        if target.cluster_selector is not None:
            criteria.append(f"clusterSelector={_describe(target.cluster_selector)}")
        shown_criteria = " ".join(criteria)
        outcome = target.deployment_id[:12] if target.deployment_id else "doNotDeploy"
        out.write(f"  {number}. {target.name:<28} {shown_criteria:<40} -> {outcome}\n")
