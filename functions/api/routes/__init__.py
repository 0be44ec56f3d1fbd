"""One Powertools Router per resource."""
