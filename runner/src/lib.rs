//! Release → running containers. Empty until the runner issue lands; nothing calls it yet.
