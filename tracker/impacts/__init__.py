"""From a change to the SOPs it touches: mapping, the review workflow, impact statuses."""
