//! Rules for names and values that come from users.

use super::error::{Error, Result};

/// Names that would collide with paas's own hostnames and paths.
const RESERVED_APP_NAMES: &[&str] = &[
    "admin",
    "api",
    "app",
    "apps",
    "assets",
    "dashboard",
    "git",
    "healthz",
    "localhost",
    "login",
    "logout",
    "metrics",
    "paas",
    "router",
    "static",
    "status",
    "www",
];

pub const MAX_CONFIG_VALUE_BYTES: usize = 32 * 1024;
const MAX_CONFIG_KEY_BYTES: usize = 256;

/// `^[a-z][a-z0-9-]{1,29}$`, no trailing or double hyphen, not reserved: an app name is a
/// DNS label in `APP.domain` and a path segment in `APP.git`.
/// An add-on's name: an app name's characters, up to 56 of them (its database and role are
/// named after it, within PostgreSQL's 63, with room for a prefix).
pub fn addon_name(name: &str) -> Result<()> {
    let valid = (2..=56).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !valid {
        return Err(Error::invalid(
            "invalid_addon_name",
            format!(
                "{name:?} cannot name an add-on: use 2 to 56 lowercase letters, digits and single \
                 hyphens, starting with a letter"
            ),
        ));
    }
    Ok(())
}

pub fn app_name(name: &str) -> Result<()> {
    let invalid = |why: &str| {
        Error::invalid(
            "invalid_app_name",
            format!(
                "{name:?} is not a valid app name: {why}. Use 2 to 30 characters: lowercase \
                 letters, digits and single hyphens, starting with a letter."
            ),
        )
    };
    let len = name.len();
    if !(2..=30).contains(&len) {
        return Err(invalid("it must be 2 to 30 characters long"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(invalid("it must start with a lowercase letter"));
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(invalid("it may hold only lowercase letters, digits and hyphens"));
    }
    if name.ends_with('-') {
        return Err(invalid("it must not end with a hyphen"));
    }
    if name.contains("--") {
        return Err(invalid("it must not contain two hyphens in a row"));
    }
    if RESERVED_APP_NAMES.contains(&name) {
        return Err(Error::invalid(
            "reserved_app_name",
            format!("{name:?} is reserved by paas; choose another app name"),
        ));
    }
    Ok(())
}

/// Environment-variable syntax: a letter or underscore, then letters, digits, underscores.
pub fn config_key(key: &str) -> Result<()> {
    let valid = !key.is_empty()
        && key.len() <= MAX_CONFIG_KEY_BYTES
        && key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_config_key",
            format!(
                "{key:?} is not a valid config var name: use letters, digits and underscores, \
                 starting with a letter or underscore (at most {MAX_CONFIG_KEY_BYTES} characters)"
            ),
        ))
    }
}

/// Any UTF-8 up to 32 KiB, except NUL, which no process environment can hold.
pub fn config_value(key: &str, value: &str) -> Result<()> {
    if value.len() > MAX_CONFIG_VALUE_BYTES {
        return Err(Error::invalid(
            "config_value_too_large",
            format!(
                "the value of {key} is {} bytes; config var values are limited to {} bytes",
                value.len(),
                MAX_CONFIG_VALUE_BYTES
            ),
        ));
    }
    if value.contains('\0') {
        return Err(Error::invalid(
            "invalid_config_value",
            format!(
                "the value of {key} contains a NUL byte, which environment variables cannot hold"
            ),
        ));
    }
    if key.starts_with(MEMORY_KEY) && memory_mb(value).is_none() {
        return Err(Error::invalid(
            "invalid_config_value",
            format!(
                "{key}={value:?}: give a memory limit in MB, from {MIN_MEMORY_MB} to {MAX_MEMORY_MB}"
            ),
        ));
    }
    // Checked here, not at the next rollout, so a typo fails the command that made it.
    if key == HEALTHCHECK_PATH_KEY && !healthcheck_path(value) {
        return Err(Error::invalid(
            "invalid_config_value",
            format!(
                "{key}={value:?}: give a URL path starting with `/`, like /health, without \
                 spaces or control characters"
            ),
        ));
    }
    if key == HEALTHCHECK_TIMEOUT_KEY && healthcheck_timeout(value).is_none() {
        return Err(Error::invalid(
            "invalid_config_value",
            format!(
                "{key}={value:?}: give whole seconds, from 1 to {MAX_HEALTHCHECK_TIMEOUT_SECS}"
            ),
        ));
    }
    Ok(())
}

/// The whole config's size: keys and values, in bytes.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// Refuses a config whose keys and values together pass [`MAX_CONFIG_BYTES`]: every var is in
/// each process's environment, and Linux refuses to start a process whose environment and
/// arguments pass about 2 MiB (`argument list too long`). `kept` is what stays as it is;
/// `set` what a change sets, so the message names the key that crossed the limit.
pub fn config_size<'a>(
    kept: impl IntoIterator<Item = (&'a String, &'a String)>,
    set: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<()> {
    let size = |(key, value): (&String, &String)| key.len() + value.len();
    let mut total: usize = kept.into_iter().map(size).sum();
    for (key, value) in set {
        total += size((key, value));
        if total > MAX_CONFIG_BYTES {
            return Err(Error::invalid(
                "config_too_large",
                format!(
                    "setting {key} makes the config {total} bytes or more (keys and values \
                     together); an app's config is limited to {MAX_CONFIG_BYTES} bytes (1 MiB), \
                     as every var is in each process's environment"
                ),
            ));
        }
    }
    Ok(())
}

/// The `web` health check's path: `GET` it once the port answers.
const HEALTHCHECK_PATH_KEY: &str = "PAAS_HEALTHCHECK_PATH";
/// The `web` health check's budget in seconds.
const HEALTHCHECK_TIMEOUT_KEY: &str = "PAAS_HEALTHCHECK_TIMEOUT";
const MAX_HEALTHCHECK_TIMEOUT_SECS: u64 = 600;

/// A path the health check can put in a request line as it is.
fn healthcheck_path(value: &str) -> bool {
    value.starts_with('/') && value.chars().all(|c| c.is_ascii_graphic())
}

/// The health check's budget in seconds, if `value` is one paas accepts.
fn healthcheck_timeout(value: &str) -> Option<u64> {
    value.parse().ok().filter(|s| (1..=MAX_HEALTHCHECK_TIMEOUT_SECS).contains(s))
}

/// `PAAS_MEMORY_MB` sets the memory limit of every process; `PAAS_MEMORY_MB_WORKER` of one
/// process type (here `worker`).
pub const MEMORY_KEY: &str = "PAAS_MEMORY_MB";
const MIN_MEMORY_MB: u64 = 16;
const MAX_MEMORY_MB: u64 = 1024 * 1024;

/// A memory limit in MB, if `value` is one paas accepts.
pub fn memory_mb(value: &str) -> Option<u64> {
    value.trim().parse().ok().filter(|mb| (MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(mb))
}

/// A custom domain: DNS labels of letters, digits and hyphens, optionally `*.` in front for
/// every subdomain. Returned lowercased.
pub fn hostname(name: &str) -> Result<String> {
    let lowered = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels = lowered.strip_prefix("*.").unwrap_or(&lowered);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let bare = lowered.trim_start_matches('[').trim_end_matches(']');
    // Browsers read a host whose last label is a number (`999.1.1.1`, `10.0.0.0x1`) as an
    // IPv4 address: taking one would route requests by IP to one app.
    let last = labels.rsplit('.').next().unwrap_or_default();
    let numeric = !last.is_empty()
        && (last.chars().all(|c| c.is_ascii_digit())
            || last
                .strip_prefix("0x")
                .is_some_and(|hex| hex.chars().all(|c| c.is_ascii_hexdigit())));
    if bare.parse::<std::net::IpAddr>().is_ok() || numeric {
        return Err(Error::invalid(
            "invalid_domain",
            format!(
                "{name:?} is an IP address, or ends in a number as one does: custom domains are \
                 names like www.example.com (requests by IP are not routed to apps)"
            ),
        ));
    }
    if lowered.len() > 253 || !labels.contains('.') || !labels.split('.').all(label_ok) {
        return Err(Error::invalid(
            "invalid_domain",
            format!("{name:?} is not a valid domain name, like www.example.com or *.example.com"),
        ));
    }
    Ok(lowered)
}

/// A Procfile process type name: letters, digits, `-` and `_`.
pub fn process_type(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 30
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_process_type",
            format!("{name:?} is not a valid process type: use letters, digits, - and _"),
        ))
    }
}

/// A branch name git would accept, kept to the plain kind: letters, digits, `-`, `_`, `.`
/// and `/` between parts (`main`, `release/2024`).
pub fn branch_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with(['.', '-'])
                && !part.ends_with(".lock")
                && part.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        && !name.contains("..");
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_branch",
            format!(
                "{name:?} is not a branch name paas accepts: use letters, digits, -, _, . and /"
            ),
        ))
    }
}

/// `v3` or `3`: a release version.
pub fn release_version(text: &str) -> Result<i64> {
    text.strip_prefix('v').unwrap_or(text).parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
        Error::invalid("invalid_version", format!("{text:?} is not a release version like v3"))
    })
}

/// Fewest characters a password may have; most bytes (argon2 hashes all of it).
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A plausible email, trimmed and lowercased: `local@domain.tld`, no spaces or control
/// characters, at most 254 bytes. Whether it reaches anyone is not paas's to check.
pub fn email(email: &str) -> Result<String> {
    let email = email.trim().to_ascii_lowercase();
    let invalid = |why: &str| {
        Error::invalid("invalid_email", format!("{email:?} is not a valid email address: {why}"))
    };
    if email.is_empty() || email.len() > 254 {
        return Err(invalid("it must be 1 to 254 characters long"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it must not contain spaces or control characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("it needs an @"));
    };
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty());
    if local.is_empty() || !domain_ok {
        return Err(invalid("it must look like name@example.com"));
    }
    Ok(email)
}

/// At least [`MIN_PASSWORD_CHARS`] characters, at most [`MAX_PASSWORD_BYTES`] bytes.
pub fn password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(
            "invalid_password",
            format!("the password is too short: use at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(
            "invalid_password",
            format!("the password is too long: at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits_are_checked_when_set() {
        assert!(config_value("PAAS_MEMORY_MB", "1024").is_ok());
        assert!(config_value("PAAS_MEMORY_MB_WORKER", " 256 ").is_ok());
        for bad in ["lots", "0", "-5", "1.5", "99999999"] {
            let err = config_value("PAAS_MEMORY_MB_WEB", bad).unwrap_err();
            assert!(err.to_string().contains("memory limit in MB"), "{err}");
        }
        assert!(config_value("MEMORY", "lots").is_ok(), "only paas's own keys");
    }

    #[test]
    fn app_names() {
        for good in ["ab", "my-app", "a1", "shop-2024", "abcdefghijklmnopqrstuvwxyz0123"] {
            assert!(app_name(good).is_ok(), "{good} should be accepted");
        }
        for bad in [
            "",
            "a",
            "1app",
            "-app",
            "app-",
            "my--app",
            "My-App",
            "my_app",
            "my.app",
            "app ",
            "abcdefghijklmnopqrstuvwxyz01234",
            "api",
            "git",
            "www",
            "paas",
            "ünïcode",
        ] {
            assert!(app_name(bad).is_err(), "{bad:?} should be refused");
        }
        let message = app_name("my--app").unwrap_err().to_string();
        assert!(message.contains("two hyphens"), "{message}");
        assert_eq!(app_name("api").unwrap_err().code(), "reserved_app_name");
    }

    #[test]
    fn branch_names() {
        for good in ["main", "master", "production", "release/2024", "v1.2"] {
            assert!(branch_name(good).is_ok(), "{good}");
        }
        for bad in ["", "/main", "main/", "a..b", "-x", ".x", "a b", "x.lock", "a//b", "ü"] {
            assert!(branch_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostnames() {
        assert_eq!(hostname("WWW.Example.com.").unwrap(), "www.example.com");
        assert_eq!(hostname("*.apps.example.com").unwrap(), "*.apps.example.com");
        for bad in ["", "localhost", "a..b", "-a.b", "a_b.com", "*.com", "a.*.b", "http://a.b"] {
            assert!(hostname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ip_addresses_are_not_domains() {
        for ip in ["1.2.3.4", "999.1.1.1", "127.0.0.1.", "*.1.2.3", "10.0.0.0x1", "::1", "[::1]"] {
            let message = hostname(ip).unwrap_err().to_string();
            assert!(message.contains("IP address"), "{ip:?}: {message}");
        }
        assert!(hostname("1.2.3.example").is_ok(), "numbers before the last label are fine");
        assert!(hostname("123.example.com").is_ok());
    }

    #[test]
    fn health_check_settings_are_checked_when_set() {
        for good in ["/", "/health", "/health?full=1", "/a/b%20c"] {
            assert!(config_value("PAAS_HEALTHCHECK_PATH", good).is_ok(), "{good:?}");
        }
        for bad in ["", "health", "/a b", "/a\tb", "/é", " /health"] {
            assert!(config_value("PAAS_HEALTHCHECK_PATH", bad).is_err(), "{bad:?}");
        }
        for good in ["1", "30", "600"] {
            assert!(config_value("PAAS_HEALTHCHECK_TIMEOUT", good).is_ok(), "{good:?}");
        }
        for bad in ["", "0", "601", "-1", "1.5", " 8", "ten"] {
            let err = config_value("PAAS_HEALTHCHECK_TIMEOUT", bad).unwrap_err();
            assert!(err.to_string().contains("1 to 600"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_whole_config_is_capped() {
        use std::collections::BTreeMap;
        let value = "v".repeat(MAX_CONFIG_VALUE_BYTES);
        let kept: BTreeMap<String, String> =
            (0..31).map(|i| (format!("K{i:02}"), value.clone())).collect();
        let under = BTreeMap::from([("A".to_string(), "x".repeat(1000))]);
        let over = BTreeMap::from([("B".to_string(), "y".into()), ("OVER".to_string(), value)]);
        assert!(config_size(&kept, &under).is_ok());
        let err = config_size(&kept, &over).unwrap_err();
        assert_eq!(err.code(), "config_too_large");
        let message = err.to_string();
        assert!(message.contains("setting OVER") && message.contains("1048576 bytes"), "{message}");
    }

    #[test]
    fn config_keys_and_values() {
        for good in ["A", "_X", "DATABASE_URL", "a1_b2"] {
            assert!(config_key(good).is_ok(), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "É"] {
            assert!(config_key(bad).is_err(), "{bad:?}");
        }
        assert!(config_value("K", &"x".repeat(MAX_CONFIG_VALUE_BYTES)).is_ok());
        assert!(config_value("K", &"x".repeat(MAX_CONFIG_VALUE_BYTES + 1)).is_err());
        assert!(config_value("K", "a\0b").is_err());
        assert!(config_value("K", "line1\nline2 é ✓ 'quotes' \"and\" $dollars").is_ok());
    }

    #[test]
    fn emails_are_checked_and_lowercased() {
        assert_eq!(email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "a b@example.com",
            "ann@@example.com",
            "ann@example..com",
            "ann@.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn passwords_have_a_floor_and_a_ceiling() {
        assert!(password("").is_err());
        assert!(password("short").is_err());
        assert!(password("long enough").is_ok());
        assert!(password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
