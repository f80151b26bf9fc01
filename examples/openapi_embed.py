#!/usr/bin/env python3
"""Converts an OpenAPI document (YAML or JSON) to the JSON api-guard embeds.

    openapi_embed.py SPEC                 print the document as JSON
    openapi_embed.py SPEC --into POLICY   set POLICY's openapi.document to it (in place)

YAML needs PyYAML; `make openapi-json` installs it under .tools/ when missing.
"""
import json
import sys


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw)
    except ValueError:
        import yaml  # only needed for YAML input

        return yaml.safe_load(raw)


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--into"):
        sys.exit(__doc__)
    doc = load(argv[1])
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith(("3.0.", "3.1.")):
        sys.exit(f"{argv[1]}: not an OpenAPI 3.0 or 3.1 document")
    if len(argv) == 2:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    with open(argv[3]) as f:
        policy = json.load(f)
    policy.setdefault("openapi", {})["document"] = doc
    with open(argv[3], "w") as f:
        json.dump(policy, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv)
