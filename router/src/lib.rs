//! The HTTP edge proxy. Empty until the router issue lands; nothing calls it yet.
