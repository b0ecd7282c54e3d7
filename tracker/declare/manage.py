"""Managing what is watched from the browser: one import for the web app and the CLI.

Sources, SOPs and teams are each managed in one place at a time (`managed_by`: `file` or `ui`, see
tracker.declare.managed); the functions here validate what the browser sends as a file sync does,
audit every change as a sync does, and export the database back as YAML.
"""

from __future__ import annotations

from tracker.declare.export import MANAGED_CHOICES, export_sops_yaml, export_sources_yaml
from tracker.declare.manage_sops import (
    create_sop,
    create_team,
    set_sop_enabled,
    set_team_enabled,
    sop_to_spec_dict,
    team_to_spec_dict,
    update_sop,
    update_team,
)
from tracker.declare.manage_sources import create_source, set_source_enabled, source_to_spec_dict, update_source
from tracker.declare.managed import MANAGERS, InvalidSpec, ManagedElsewhere, set_managed_by

__all__ = ["MANAGED_CHOICES", "MANAGERS", "InvalidSpec", "ManagedElsewhere", "create_sop", "create_source",
           "create_team", "export_sops_yaml", "export_sources_yaml", "set_managed_by", "set_source_enabled",
           "set_sop_enabled", "set_team_enabled", "sop_to_spec_dict", "source_to_spec_dict", "team_to_spec_dict",
           "update_sop", "update_source", "update_team"]
