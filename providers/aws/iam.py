"""IAM documents more than one AWS builder writes."""

from __future__ import annotations

import json


def service_trust_policy(service: str, account: str, source_arn: str) -> str:
    """A role that the AWS service `service` (`s3.amazonaws.com`) may assume only on behalf of
    `source_arn` in `account`: the condition keys AWS documents against the confused deputy, where
    another account's resource names this role. A `source_arn` with a wildcard (all flow logs of
    the account) is matched with ArnLike, an exact one with ArnEquals.
    """
    match = "ArnLike" if "*" in source_arn else "ArnEquals"
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}, match: {"aws:SourceArn": source_arn}},
        }],
    }, sort_keys=True)
