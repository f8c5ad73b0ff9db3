#!/usr/bin/env bash
# The Khronos glTF validator (npm's gltf-validator) on glTF files: errors and warnings per file.
#
#   bash scripts/validate_gltf.sh out/NAME_p0_anim.glb [more.glb ...]
#
# Needs node and npm (Debian: apt-get install nodejs npm); installs the validator into a
# temporary folder. Exits non-zero when a file has an error.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 FILE.glb [...]" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm install --silent gltf-validator >/dev/null)
cat > "$TMP/v.js" <<'JS'
const v = require('gltf-validator'); const fs = require('fs');
(async () => {
  let bad = 0;
  for (const f of process.argv.slice(2)) {
    const r = await v.validateBytes(new Uint8Array(fs.readFileSync(f)));
    const codes = {};
    for (const m of r.issues.messages) codes[m.code] = (codes[m.code] || 0) + 1;
    console.log(`${f}: ${r.issues.numErrors} errors, ${r.issues.numWarnings} warnings ${JSON.stringify(codes)}`);
    bad += r.issues.numErrors > 0;
  }
  process.exit(bad ? 1 : 0);
})();
JS
NODE_PATH="$TMP/node_modules" node "$TMP/v.js" "$@"
