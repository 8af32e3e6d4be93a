# shellcheck shell=bash
# The GCP secret store of the Swarm bootstrap: Secret Manager secrets under the stack's Cloud KMS
# key, reached over its REST API with the access token of this machine's service account, which
# the metadata server hands out (no gcloud on the node). A read is the latest version; a write adds
# a version. Tokens and values never stand on a command line (curl reads its headers from standard
# input, values from a private temporary file) nor in any output but the value read.
# DPC_METADATA_URL and DPC_SECRET_MANAGER_URL point elsewhere only in tests.

DPC_METADATA_URL=${DPC_METADATA_URL:-http://169.254.169.254/computeMetadata/v1}
DPC_SECRET_MANAGER_URL=${DPC_SECRET_MANAGER_URL:-https://secretmanager.googleapis.com/v1}

# The metadata server; the header is what it requires of every request (and what a request
# forwarded from elsewhere lacks).
metadata() {
  curl -sSf --max-time 10 -H 'Metadata-Flavor: Google' "$DPC_METADATA_URL/$1"
}

private_address() {
  metadata instance/network-interfaces/0/ip
}

# An OAuth access token of the machine's service account (valid for minutes, renewed by the
# metadata server), for the Google APIs and the docker credential helper.
access_token() {
  local answer
  answer=$(metadata instance/service-accounts/default/token) || return 1
  jq -er .access_token <<<"$answer"
}

# google_api METHOD URL [BODY-FILE]: one call of a Google REST API as this machine; the token goes
# to curl through its configuration on standard input.
google_api() {
  local token
  token=$(access_token) || return 1
  printf 'header = "Authorization: Bearer %s"\n' "$token" |
    curl -sSf --max-time 30 --config - -X "$1" -H 'Content-Type: application/json' ${3:+--data-binary "@$3"} "$2"
}

secret_get() {
  local answer
  answer=$(google_api GET "$DPC_SECRET_MANAGER_URL/$1/versions/latest:access") || return 1
  jq -er .payload.data <<<"$answer" | base64 -d
}

secret_put() {
  local file status=0
  file=$(mktemp)
  { printf '{"payload": {"data": "'; base64 -w 0; printf '"}}'; } >"$file"
  google_api POST "$DPC_SECRET_MANAGER_URL/$1:addVersion" "$file" >/dev/null || status=$?
  rm -f "$file"
  return "$status"
}
