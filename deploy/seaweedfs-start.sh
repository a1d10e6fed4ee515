#!/bin/sh
# SeaweedFS in one process (master, volume, filer, S3 gateway), telemetry off. The S3 keys
# come from the environment into an s3.json only this user can read.
set -eu
: "${S3_ACCESS_KEY:?set FLEET_S3_ACCESS_KEY}"
: "${S3_SECRET_KEY:?set FLEET_S3_SECRET_KEY}"
json() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }
umask 077
config=/tmp/s3.json
printf '{"identities": [{"name": "imagefleet", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}\n' \
  "$(json "$S3_ACCESS_KEY")" "$(json "$S3_SECRET_KEY")" > "$config"
exec weed server -dir=/data -ip=127.0.0.1 -ip.bind=0.0.0.0 -master.telemetry=false \
  -master.volumeSizeLimitMB="${SEAWEEDFS_VOLUME_SIZE_MB:-1024}" -volume.max=0 \
  -s3 -s3.port=8333 -s3.config="$config"
