#!/usr/bin/env bash
# Regenerates tests/data/flink_keygroups.csv (or the path given as $1) by running
# Flink's own key-group code.
# Needs JDK 17+ and Maven; the first run downloads flink-runtime from Maven Central.
set -euo pipefail

tool_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${tool_dir}/../../.." && pwd)"
out="${1:-${repo_root}/tests/data/flink_keygroups.csv}"

cd "${tool_dir}"
trap 'rm -rf "${tool_dir}/target"' EXIT

mvn -q -B compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt

mkdir -p "$(dirname "${out}")"
java -cp "target/classes:$(cat target/classpath.txt)" io.statebackend.tools.KeyGroupVectors "${out}"

echo "wrote ${out}"
