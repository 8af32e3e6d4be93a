# shellcheck shell=bash
# The Azure secret store of the Swarm bootstrap: secrets of the stack's Key Vault (RBAC, one role
# assignment per secret and identity), each named by its identifier
# (https://<vault>.vault.azure.net/secrets/<name>), reached over Key Vault's REST API with an access
# token of this machine's user-assigned managed identity, which the instance metadata service
# (IMDS) hands out (no Azure CLI on the node). A read is the latest version; a write adds a version.
# Tokens and values never stand on a command line (curl reads its headers from standard input,
# values from a private temporary file) nor in any output but the value read.
# Settings (node.env, host-key.env): DPC_IDENTITY, the identity's resource id (IMDS's `msi_res_id`:
# named, so the user data needs nothing created after it). DPC_IMDS_URL and DPC_KEY_VAULT_ENDPOINT
# (the vault's origin in place of the identifiers') point elsewhere only in tests.

DPC_IMDS_URL=${DPC_IMDS_URL:-http://169.254.169.254/metadata}
KEY_VAULT_API_VERSION=7.4
KEY_VAULT_RESOURCE=https://vault.azure.net

# imds PATH API-VERSION [NAME=VALUE...]: the instance metadata service, which answers only requests
# carrying `Metadata: true` (and none relayed through a proxy); the values are URL-encoded.
imds() {
  local path=$1 version=$2 parameter arguments=()
  shift 2
  for parameter in "api-version=$version" "$@"; do
    arguments+=(--data-urlencode "$parameter")
  done
  curl -sSf --max-time 10 --noproxy '*' -G -H 'Metadata: true' "${arguments[@]}" "$DPC_IMDS_URL/$path"
}

private_address() {
  imds instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress 2021-02-01 format=text
}

# access_token RESOURCE: an OAuth access token of this machine's identity for RESOURCE (valid for
# hours, cached and renewed by IMDS), for Key Vault and the docker credential helper.
access_token() {
  local answer
  answer=$(imds identity/oauth2/token 2018-02-01 "resource=$1" "msi_res_id=$DPC_IDENTITY") || return 1
  jq -er .access_token <<<"$answer"
}

# key_vault METHOD SECRET [BODY-FILE]: one call of Key Vault's REST API on a secret (its identifier)
# as this machine; the token goes to curl through its configuration on standard input.
key_vault() {
  local token url=$2
  [ -z "${DPC_KEY_VAULT_ENDPOINT:-}" ] || url=$DPC_KEY_VAULT_ENDPOINT/secrets/${2#*/secrets/}
  token=$(access_token "$KEY_VAULT_RESOURCE") || return 1
  printf 'header = "Authorization: Bearer %s"\n' "$token" |
    curl -sSf --max-time 30 --config - -X "$1" -H 'Content-Type: application/json' ${3:+--data-binary "@$3"} \
      "$url?api-version=$KEY_VAULT_API_VERSION"
}

# The value exactly as written (jq -j adds no newline).
secret_get() {
  local answer
  answer=$(key_vault GET "$1") || return 1
  jq -je .value <<<"$answer"
}

secret_put() {
  local file status=0
  file=$(mktemp)
  jq -Rs '{value: .}' >"$file" && key_vault PUT "$1" "$file" >/dev/null || status=$?
  rm -f "$file"
  return "$status"
}
