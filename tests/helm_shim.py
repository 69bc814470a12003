"""A `helm` command line over helm-python-sdk (Helm's own Go library), for
tests of the controller's helm-binary fallback where no helm binary can be
installed. Implements `helm template NAME CHART --namespace NS --values F
--include-crds` and `helm pull CHART --destination D [--repo R] [--version V]`."""

import argparse
import sys

import helm_python
import yaml


def main() -> int:
    parser = argparse.ArgumentParser(prog="helm")
    commands = parser.add_subparsers(dest="command", required=True)
    template = commands.add_parser("template")
    template.add_argument("name")
    template.add_argument("chart")
    template.add_argument("--namespace", default="default")
    template.add_argument("--values", action="append", default=[])
    template.add_argument("--include-crds", action="store_true")
    pull = commands.add_parser("pull")
    pull.add_argument("chart")
    pull.add_argument("--destination", required=True)
    pull.add_argument("--repo")
    pull.add_argument("--version")
    args = parser.parse_args()
    try:
        if args.command == "pull":
            helm_python.pull(
                args.chart, destination=args.destination, repo_url=args.repo, version=args.version
            )
            return 0
        values: dict = {}
        for path in args.values:
            with open(path, encoding="utf-8") as handle:
                values.update(yaml.safe_load(handle) or {})
        chart = helm_python.Chart.load(args.chart)
        documents = [crd["data"] for crd in chart.crds] if args.include_crds else []
        rendered = chart.render(values, name=args.name, namespace=args.namespace, is_install=True)
        for path, text in sorted(rendered.items()):
            if not path.endswith("NOTES.txt"):
                documents.append(f"# Source: {path}\n{text}")
    except helm_python.HelmError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write("---\n" + "\n---\n".join(documents))
    return 0


if __name__ == "__main__":
    sys.exit(main())
