#!/usr/bin/env python3
"""python-tuf's ngclient, the reference TUF client, against an outpost-registry.

Usage: tuf_client.py <registry-url> <metadata-dir> <download-dir> [target ...]

<metadata-dir> holds the client's trusted metadata, root.json at first, and
keeps what each run learns, as a real client would. Prints one JSON object:
the trusted root version after the refresh and, per target, the downloaded
file's path and size, or the error python-tuf raised. Exits 0 only when the
refresh and every download verified.
"""

import json
import sys
import traceback

from tuf.ngclient import Updater


def main() -> int:
    registry, metadata_dir, download_dir, *targets = sys.argv[1:]
    registry = registry.rstrip("/")
    updater = Updater(
        metadata_dir=metadata_dir,
        metadata_base_url=f"{registry}/tuf/",
        target_dir=download_dir,
        target_base_url=f"{registry}/tuf/targets/",
        # Trust what the metadata folder holds: root.json at first, then
        # whatever earlier runs verified.
        bootstrap=None,
    )
    result = {"refreshed": False, "targets": {}}
    ok = True
    try:
        updater.refresh()
        result["refreshed"] = True
    except Exception as error:  # report whatever python-tuf refused
        result["error"] = f"{type(error).__name__}: {error}"
        print(json.dumps(result))
        return 1
    with open(f"{metadata_dir}/root.json", "rb") as root:
        result["root_version"] = json.load(root)["signed"]["version"]
    for name in targets:
        try:
            info = updater.get_targetinfo(name)
            if info is None:
                raise LookupError(f"no target {name} in the signed metadata")
            path = updater.download_target(info)
            result["targets"][name] = {"path": path, "length": info.length}
        except Exception as error:
            ok = False
            result["targets"][name] = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
