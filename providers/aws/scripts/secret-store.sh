# shellcheck shell=bash
# The AWS secret store of the Swarm bootstrap: SSM Parameter Store SecureString parameters,
# encrypted with the stack's KMS key. Values are read from standard input into a private
# temporary file, so they never stand on a command line.

# The instance metadata service, IMDSv2 only (a session token on every request).
metadata() {
  local token
  token=$(curl -sSf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
  curl -sSf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

private_address() {
  metadata local-ipv4
}

secret_get() {
  aws ssm get-parameter --region "$DPC_REGION" --name "$1" --with-decryption \
    --query Parameter.Value --output text
}

secret_put() {
  local file status=0
  file=$(mktemp)
  cat >"$file"
  aws ssm put-parameter --region "$DPC_REGION" --name "$1" --type SecureString \
    --key-id "$DPC_KEY_ID" --overwrite --value "file://$file" >/dev/null || status=$?
  rm -f "$file"
  return "$status"
}
