"""Is this run inside CI? Read from the environment alone.

Lives in config because two stages ask: privacy (never prompt or notify in CI) and collect (the
``cicd`` resource flag).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

# Environment variables that identify a CI provider, checked in order.
CI_PROVIDERS: tuple[tuple[str, str], ...] = (
    ("GITHUB_ACTIONS", "github_actions"),
    ("GITLAB_CI", "gitlab"),
    ("CIRCLECI", "circleci"),
    ("TRAVIS", "travis"),
    ("JENKINS_URL", "jenkins"),
    ("BUILDKITE", "buildkite"),
    ("TF_BUILD", "azure_pipelines"),
    ("TEAMCITY_VERSION", "teamcity"),
    ("BITBUCKET_BUILD_NUMBER", "bitbucket"),
    ("CODEBUILD_BUILD_ID", "aws_codebuild"),
    ("DRONE", "drone"),
    ("APPVEYOR", "appveyor"),
)


def detect_ci(environ: Mapping[str, str]) -> str | None:
    """The CI provider's name, "generic" for a bare ``CI=true``, or None outside CI."""
    for var, name in CI_PROVIDERS:
        if environ.get(var):
            return name
    ci = environ.get("CI", "").strip().lower()
    if ci and ci not in ("0", "false", "no"):
        return "generic"
    return None
