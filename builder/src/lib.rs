//! Source tree → container image. Empty until the builder issue lands; nothing calls it yet.
