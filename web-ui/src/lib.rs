//! The web dashboard. Empty until the dashboard issue lands; nothing calls it yet.
