#!/usr/bin/env bash
# The REST workflow with curl, for any model and dataset size (the README's "The API, step by step").
#
#   export API=http://127.0.0.1:8787 TOKEN=<token printed by `make serve`>
#   MODEL=$(docs/api-workflow.sh model base.safetensors sd15)          # every part, any size
#   DATASET=$(docs/api-workflow.sh dataset ./my-dataset "my cat")       # any file names (spaces too), any count
#   docs/api-workflow.sh validate sd15 '{"network_dim":16}' "$DATASET" ml.g5.2xlarge
#   JOB=$(docs/api-workflow.sh train sd15 "$MODEL" "$DATASET" ml.g5.2xlarge '{"network_dim":16}')
#   docs/api-workflow.sh wait "$JOB"                                    # exit 4 unless COMPLETED
#   docs/api-workflow.sh download "$JOB" lora.safetensors               # a model id; a LoRA's id is its job's
#
# Needs bash, curl and jq (https://jqlang.github.io/jq/); GNU or BSD userland. Every request
# fails loudly: a non-2xx answer prints the API's JSON error on stderr and stops the script. The bearer token is the local
# runtime's; against AWS sign requests with SigV4 instead (awscurl --service execute-api, or loractl).
set -euo pipefail

API=${API:-http://127.0.0.1:8787}
: "${TOKEN:?set TOKEN to the token printed by make serve (loractl local serve)}"
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "api-workflow.sh needs $tool on the PATH" >&2; exit 2; }
done

call() { # METHOD PATH [JSON BODY [more curl arguments]] -> the body; non-2xx: the API's error on stderr, fail
  local method=$1 path=$2 body status
  body=$(mktemp)
  if [[ $# -ge 3 ]]; then
    status=$(curl -sS -o "$body" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $TOKEN" \
      -H "Content-Type: application/json" --data-binary "$3" "${@:4}" "$API$path")
  else
    status=$(curl -sS -o "$body" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $TOKEN" "$API$path")
  fi
  if [[ $status -lt 200 || $status -ge 300 ]]; then
    echo "$method $path: HTTP $status $(cat "$body")" >&2
    rm -f "$body"
    return 1
  fi
  cat "$body"
  rm -f "$body"
}

file_size() { wc -c <"$1" | tr -d ' '; }

stored_name() { # the API's file names are [A-Za-z0-9][A-Za-z0-9._-]*.safetensors: "my model.safetensors" -> "my-model.safetensors"
  basename "$1" | sed 's/[^A-Za-z0-9._-]/-/g; s/^[^A-Za-z0-9]/m/'
}

new_key() { # an Idempotency-Key; never empty
  local key
  key=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || uuidgen 2>/dev/null || od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  [[ -n $key ]] || { echo "could not make an Idempotency-Key" >&2; exit 2; }
  echo "$key"
}

upload_model() { # FILE FM_TYPE: POST /models, PUT every part's byte range, complete -> model id
  local file=$1 fm_type=$2 size created id part_size parts etags='[]'
  size=$(file_size "$file")
  created=$(call POST /models "$(jq -n --arg name "$(basename "$file" .safetensors)" --arg fm "$fm_type" \
    --arg filename "$(stored_name "$file")" --argjson size "$size" \
    '{name: $name, fm_type: $fm, filename: $filename, size_bytes: $size}')")
  id=$(jq -r .model.id <<<"$created")
  part_size=$(jq -r .upload.part_size <<<"$created")
  parts=$(jq -r '.upload.parts[] | "\(.part_number)\t\(.url)"' <<<"$created")
  while IFS=$'\t' read -r number url; do
    local offset=$(((number - 1) * part_size)) length etag
    length=$((size - offset < part_size ? size - offset : part_size))
    # part N is the bytes [(N-1)*part_size, N*part_size) of the file (the last part holds the rest);
    # "Content-Type:" drops the form type --data-binary would add (the presigned PUT signs none)
    # (parts are whole MiBs, so dd reads them in 1 MiB blocks; the last one stops at the end of the file)
    etag=$(dd if="$file" bs=1048576 skip="$((offset / 1048576))" count="$(((length + 1048575) / 1048576))" 2>/dev/null |
      curl -sS --fail-with-body -X PUT -H "Content-Length: $length" -H "Content-Type:" --data-binary @- "$url" -D - -o /dev/stderr |
      tr -d '\r' | awk 'tolower($1) == "etag:" {print $2}')
    [[ -n $etag ]] || { echo "part $number: S3 returned no ETag" >&2; exit 5; }
    etags=$(jq -c --argjson n "$number" --arg e "$etag" '. + [{part_number: $n, etag: $e}]' <<<"$etags")
  done <<<"$parts"
  call POST "/models/$id/complete" "$(jq -n --argjson parts "$etags" '{parts: $parts}')" |
    jq -e '.status == "ready"' >/dev/null || { echo "model $id is not ready" >&2; exit 3; }
  echo "$id"
}

put_files() { # DIR UPLOADS_JSON: PUT each file to its presigned URL with the headers given
  local dir=$1 fields
  while IFS=$'\t' read -r -a fields; do # path, url, then one "Name: value" per header
    local headers=()
    for header in "${fields[@]:2}"; do headers+=(-H "$header"); done
    curl -sS --fail-with-body -X PUT -H "Content-Type:" "${headers[@]}" --data-binary @"$dir/${fields[0]}" "${fields[1]}" -o /dev/null
  done < <(jq -r '.uploads[] | [.path, .url] + ((.headers // {}) | to_entries | map("\(.key): \(.value)")) | @tsv' <<<"$2")
}

upload_dataset() { # DIR NAME: declare every file, PUT them (500 URLs per answer), complete -> dataset id
  local dir=${1%/} name=$2 files created id remaining
  files=$(cd "$dir" && find . -type f ! -name .DS_Store ! -name Thumbs.db ! -name '._*' -print0 |
    while IFS= read -r -d '' f; do printf '%s\t%s\n' "$(file_size "$f")" "${f#./}"; done |
    jq -Rn '[inputs | split("\t") | {path: (.[1:] | join("\t")), size_bytes: (.[0] | tonumber)}] | sort_by(.path)')
  created=$(call POST /datasets "$(jq -n --arg name "$name" --argjson files "$files" '{name: $name, files: $files}')")
  id=$(jq -r .dataset.id <<<"$created")
  put_files "$dir" "$created"
  remaining=$(jq -c --argjson done "$(jq '[.uploads[].path]' <<<"$created")" '[.[].path] - $done' <<<"$files")
  while [[ $(jq length <<<"$remaining") -gt 0 ]]; do # the next 500 declared paths
    local batch answer
    batch=$(jq -c '.[:500]' <<<"$remaining")
    answer=$(call POST "/datasets/$id/uploads" "$(jq -n --argjson paths "$batch" '{paths: $paths}')")
    put_files "$dir" "$answer"
    remaining=$(jq -c '.[500:]' <<<"$remaining")
  done
  local completed
  completed=$(call POST "/datasets/$id/complete" '{}')
  # The service decodes every file in the background: "validating" until it is ready or invalid.
  while jq -e '.status == "validating"' <<<"$completed" >/dev/null; do
    sleep 1
    completed=$(call GET "/datasets/$id")
  done
  if ! jq -e '.status == "ready"' <<<"$completed" >/dev/null; then
    jq -r '.manifest.problems[]?' <<<"$completed" >&2 # every problem the manifest found
    exit 3
  fi
  echo "$id"
}

case ${1:-} in
  model) upload_model "$2" "$3" ;;
  dataset) upload_dataset "$2" "${3:-$(basename "$2")}" ;;
  validate) # FM_TYPE CONFIG_JSON [DATASET_ID INSTANCE_TYPE]: normalised config (and the plan)
    call POST /configs/validate "$(jq -n --arg fm "$2" --argjson config "$3" --arg ds "${4:-}" --arg it "${5:-}" \
      '{fm_type: $fm, config: $config} + (if $ds != "" then {dataset_id: $ds, instance_type: $it} else {} end)')" | jq . ;;
  train) # FM_TYPE MODEL_ID DATASET_ID INSTANCE_TYPE CONFIG_JSON -> job id (retry-safe: one key per call)
    call POST /trainings "$(jq -n --arg fm "$2" --arg m "$3" --arg d "$4" --arg it "$5" --argjson config "${6:-{\}}" \
      '{fm_type: $fm, base_model_id: $m, dataset_id: $d, instance_type: $it, config: $config}')" \
      -H "Idempotency-Key: $(new_key)" | jq -r .id ;;
  status) call GET "/trainings/$2" | jq '{status, secondary_status, failure_reason, progress, plan}' ;;
  wait) # JOB: poll every 5 s until it ends; exit 0 COMPLETED, 4 FAILED/STOPPED
    while :; do
      status=$(call GET "/trainings/$2" | jq -r .status)
      case $status in COMPLETED) exit 0 ;; FAILED | STOPPED) echo "$status" >&2; exit 4 ;; esac
      sleep 5
    done ;;
  download) # MODEL_ID FILE [EPOCH]: the model's file (a LoRA's id is its job's id)
    url=$(call GET "/models/$2${4:+?epoch=$4}" | jq -er .download_url)
    curl -sS --fail-with-body -o "$3" "$url" ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
