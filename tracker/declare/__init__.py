"""The YAML declarations (sources, SOPs, schedules): validated, then synced into the database."""
