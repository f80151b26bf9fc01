#!/usr/bin/env python3
"""Packs the module as an OCI image layout, in both variants Istio and Envoy Gateway accept.

    oci.py MODULE OUT [--version V] [--lean LEAN_MODULE]

writes an OCI image layout (https://github.com/opencontainers/image-spec, image-layout.md) to
OUT holding two manifests:

  V        the "compat" image: one tar+gzip layer holding `plugin.wasm`, annotated
           `module.wasm.image/variant: compat` (a plain container image: every registry,
           skopeo, Istio and Envoy Gateway take it);
  V-oci    the Wasm OCI artifact: config and first layer
           `application/vnd.module.wasm.config.v1+json` (the runtime config), second layer the
           raw module as `application/vnd.module.wasm.content.layer.v1+wasm` (Istio's fetcher
           wants exactly these two layers).

With `--lean`, the lean module (built without OpenAPI validation) is packed the same way as
`V-lean` and `V-lean-oci`, in the same layout.

No Docker engine is involved. The output is a pure function of the module's bytes and V:
tar entries have fixed owner, mode and time, gzip has no name or time, JSON has sorted keys,
so the same module always gives the same digests. Push with skopeo (see `make oci-push`).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile

WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"
WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    def __init__(self, out):
        self.out = out
        os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)

    def blob(self, data, media_type, annotations=None):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.out, "blobs", "sha256", digest), "wb") as f:
            f.write(data)
        d = {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}
        if annotations:
            d["annotations"] = annotations
        return d


def tar_of(name, data):
    """A tar with one regular file, nothing in it depending on the machine or the time."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def pack(layout, wasm, version):
    """The two manifests of one module: (compat, artifact) descriptors."""
    created = "1970-01-01T00:00:00Z"
    title = {"org.opencontainers.image.title": "plugin.wasm"}

    # compat: a container image whose only layer holds plugin.wasm.
    tar = tar_of("plugin.wasm", wasm)
    layer = layout.blob(gzip.compress(tar, mtime=0), OCI_LAYER_GZIP)
    config = layout.blob(
        canonical({
            "architecture": "wasm",
            "os": "wasip1",
            "created": created,
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        }),
        OCI_CONFIG,
    )
    compat = layout.blob(
        canonical({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [layer],
            "annotations": {"module.wasm.image/variant": "compat", "org.opencontainers.image.created": created},
        }),
        OCI_MANIFEST,
        {"org.opencontainers.image.ref.name": version},
    )

    # The Wasm OCI artifact: runtime config, then the raw module.
    runtime = layout.blob(canonical({"type": "envoy_proxy", "abiVersions": ["v0.2.1"], "config": {}}), WASM_CONFIG)
    module_layer = layout.blob(wasm, WASM_LAYER, title)
    artifact = layout.blob(
        canonical({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": runtime,
            "layers": [runtime, module_layer],
            "annotations": {"org.opencontainers.image.created": created},
        }),
        OCI_MANIFEST,
        {"org.opencontainers.image.ref.name": version + "-oci"},
    )
    print(f"{layout.out}: {version} (compat) {compat['digest']}")
    print(f"{layout.out}: {version}-oci (wasm artifact) {artifact['digest']}")
    print(f"module sha256:{hashlib.sha256(wasm).hexdigest()} ({len(wasm)} bytes)")
    return [compat, artifact]


def build(module, out, version, lean=None):
    layout = Layout(out)
    manifests = pack(layout, open(module, "rb").read(), version)
    if lean:
        manifests += pack(layout, open(lean, "rb").read(), version + "-lean")
    with open(os.path.join(out, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(out, "index.json"), "wb") as f:
        f.write(canonical({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": manifests}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("module")
    p.add_argument("out")
    p.add_argument("--version", default="latest")
    p.add_argument("--lean", help="the lean module, packed as VERSION-lean and VERSION-lean-oci")
    a = p.parse_args()
    build(a.module, a.out, a.version, a.lean)


if __name__ == "__main__":
    main()
