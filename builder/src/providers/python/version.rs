//! Which Python an app asks for, read and checked as Heroku's Python buildpack does: the same
//! files in the same order (`runtime.txt`, `.python-version`, `Pipfile.lock`), the same
//! format, and the same refusals (end of life, unknown, invalid, ambiguous), so an app that
//! builds there builds here with the version it named, and one that does not says why.

use std::fmt;

use super::Manager;
use crate::BuildError;
use crate::providers::App;

/// The minor versions paas knows, oldest first, each with its newest patch release: a pin
/// above it names a release that does not exist. (Heroku's buildpack v351 knows the same
/// minors; the newest patches are the newer of its and Debian's.)
pub(crate) const KNOWN: [(u32, u32); 5] = [(10, 21), (11, 16), (12, 14), (13, 18), (14, 10)];
/// The oldest minor version still supported; older ones are past their end of life.
const OLDEST: u32 = KNOWN[0].0;
/// Asked for when an app names no version, as on Heroku.
pub(crate) const DEFAULT_MINOR: u32 = 14;

/// `3.13` or `3.13.2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: Option<u32>,
}

impl Version {
    /// `N.N` or `N.N.N`, digits without leading zeros, nothing else.
    fn parse(text: &str) -> Option<Version> {
        let parts: Vec<&str> = text.split('.').collect();
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        let number = |part: &str| {
            let digits = !part.is_empty() && part.chars().all(|c| c.is_ascii_digit());
            let leading_zero = part.len() > 1 && part.starts_with('0');
            (digits && !leading_zero).then(|| part.parse::<u32>().ok()).flatten()
        };
        let numbers: Option<Vec<u32>> = parts.into_iter().map(number).collect();
        let numbers = numbers?;
        Some(Version { major: numbers[0], minor: numbers[1], patch: numbers.get(2).copied() })
    }

    /// `3.13`, the image tag's part.
    pub(crate) fn minor_string(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(patch) => write!(f, "{}.{}.{patch}", self.major, self.minor),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

/// The version an app asks for and the file it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub version: Version,
    /// `.python-version`, `runtime.txt` or `Pipfile.lock`.
    pub origin: &'static str,
}

/// What the app asks for (`None`: it names no version, and gets the default) and the
/// warnings for the log. Every refusal is a [`BuildError::Python`] saying what to change.
pub(crate) fn requested(
    app: &App,
    manager: Manager,
    warnings: &mut Vec<String>,
) -> Result<Option<Request>, BuildError> {
    let request = if let Some(text) = app.read("runtime.txt")? {
        if manager == Manager::Uv {
            return Err(version_error(
                "runtime.txt is not used with uv: uv reads the Python version from \
                 .python-version. Delete runtime.txt and run `uv python pin 3.N` (your minor \
                 version, no patch), then commit .python-version",
            ));
        }
        warnings.push(
            "runtime.txt is deprecated, as on Heroku: replace it with a .python-version file \
             holding only the version, e.g. `3.14`"
                .into(),
        );
        Some(Request { version: runtime_txt(&text)?, origin: "runtime.txt" })
    } else if let Some(name) = misspelled(app) {
        return Err(version_error(format!(
            "{name:?} looks like a misspelled .python-version: rename it to `.python-version` \
             (a leading dot, a hyphen, no extension)"
        )));
    } else if let Some(text) = read_version_file(app)? {
        Some(Request { version: python_version_file(&text)?, origin: ".python-version" })
    } else if manager == Manager::Pipenv {
        pipfile_lock(app)?.map(|version| Request { version, origin: "Pipfile.lock" })
    } else {
        None
    };
    match &request {
        Some(request) => check(request, warnings)?,
        None if manager == Manager::Uv => {
            return Err(version_error(format!(
                "no Python version: with uv, the version must be in a .python-version file. \
                 Run `uv python pin 3.{DEFAULT_MINOR}` (your minor version, no patch) and \
                 commit .python-version"
            )));
        }
        None => warnings.push(format!(
            "no Python version is named: add a .python-version file holding your minor \
             version (e.g. `3.{DEFAULT_MINOR}`), so that a change of paas's default never \
             changes the Python your app runs on"
        )),
    }
    Ok(request)
}

fn version_error(message: impl Into<String>) -> BuildError {
    BuildError::Python { code: "python_version", message: message.into() }
}

const FORMAT: &str = "write the version as the minor version alone, e.g. `3.14` (recommended), \
     or an exact release, e.g. `3.14.2`: no quotes, `python-` prefix or wildcards, and comments \
     on their own lines starting with `#`";

/// `.python-version`'s bytes, read raw: an encoding paas cannot read is its own error.
fn read_version_file(app: &App) -> Result<Option<String>, BuildError> {
    match app.read(".python-version") {
        Ok(Some(text)) if text.starts_with('\u{feff}') => Err(encoding_error("UTF-8 with a BOM")),
        Ok(text) => Ok(text),
        Err(BuildError::Manifest { message, .. }) if message.contains("not UTF-8") => {
            Err(encoding_error("not UTF-8 (UTF-16, as Windows shells write, perhaps)"))
        }
        Err(other) => Err(other),
    }
}

fn encoding_error(what: &str) -> BuildError {
    version_error(format!(
        ".python-version cannot be read: its text encoding is {what}. Save it as UTF-8 without \
         a BOM (or plain ASCII), e.g. `echo 3.{DEFAULT_MINOR} > .python-version`"
    ))
}

/// The lines that say something: trimmed, without blanks and `#` comments.
fn meaningful_lines(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).collect()
}

fn python_version_file(text: &str) -> Result<Version, BuildError> {
    let lines = meaningful_lines(text);
    if let Some(bad) = lines.iter().find(|line| Version::parse(line).is_none()) {
        return Err(version_error(format!(
            "invalid Python version in .python-version: found `{}`; {FORMAT}",
            printable(bad)
        )));
    }
    match lines.as_slice() {
        [] => Err(version_error(format!(
            "no Python version in .python-version: write your minor version in it, e.g. \
             `3.{DEFAULT_MINOR}` (a line starting with `#` is a comment)"
        ))),
        [one] => Ok(Version::parse(one).expect("checked above")),
        many => Err(version_error(format!(
            "several Python versions in .python-version ({}): keep only the one the app runs on",
            many.join(", ")
        ))),
    }
}

/// Control and invisible characters shown as `�`, so the log says what is really there.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            let invisible = c.is_control() && c != '\t'
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{a0}' | '\u{feff}');
            if invisible { '\u{fffd}' } else { c }
        })
        .collect()
}

fn runtime_txt(text: &str) -> Result<Version, BuildError> {
    let lines = meaningful_lines(text);
    match lines.as_slice() {
        [one] => one.strip_prefix("python-").and_then(Version::parse),
        _ => None,
    }
    .ok_or_else(|| {
        version_error(format!(
            "invalid Python version in runtime.txt, which should hold one line like \
             `python-3.{DEFAULT_MINOR}`. runtime.txt is deprecated: delete it and create a \
             .python-version file instead; {FORMAT}"
        ))
    })
}

/// `_meta.requires.python_full_version`, else `python_version`, from `Pipfile.lock`.
pub(crate) fn pipfile_lock(app: &App) -> Result<Option<Version>, BuildError> {
    let Some(text) = app.read("Pipfile.lock")? else {
        return Ok(None);
    };
    let lock: serde_json::Value = serde_json::from_str(&text).map_err(|e| BuildError::Python {
        code: "python_package_manager",
        message: format!(
            "Pipfile.lock is not valid JSON ({e}): run `pipenv lock` to write it again"
        ),
    })?;
    let requires = &lock["_meta"]["requires"];
    let Some(found) =
        ["python_full_version", "python_version"].iter().find_map(|key| requires[key].as_str())
    else {
        return Ok(None);
    };
    Version::parse(found.trim()).map(Some).ok_or_else(|| {
        version_error(format!(
            "invalid Python version in Pipfile.lock: found `{}` (python_version or \
             python_full_version); wildcards and ranges are not versions. Set \
             `python_version = \"3.{DEFAULT_MINOR}\"` under [requires] in the Pipfile and run \
             `pipenv lock`",
            printable(found)
        ))
    })
}

/// Names people give `.python-version` by mistake (Heroku refuses the same ones).
fn misspelled(app: &App) -> Option<String> {
    const NAMES: [&str; 19] = [
        " .python-version",
        ". python-version",
        ".python_version",
        ".python_version.txt",
        ".python-version ",
        ",python-version",
        ".python-version.",
        ".python-version.py",
        ".python-version.rtf",
        ".python-version.txt",
        ".python-version.TXT",
        ".Python-version",
        ".python.version",
        ".pythonversion",
        "'.python-version'",
        "python_version",
        "python_version.txt",
        "python-version",
        "python-version.txt",
    ];
    NAMES.iter().find(|name| app.is_file(name)).map(|name| name.to_string())
}

/// End of life, unknown, or a release that does not exist: refused. Deprecated or an old
/// patch: a warning.
fn check(request: &Request, warnings: &mut Vec<String>) -> Result<(), BuildError> {
    let Request { version, origin } = request;
    let newest = KNOWN.last().map(|(minor, _)| format!("3.{minor}")).unwrap_or_default();
    if version.major < 3 || (version.major == 3 && version.minor < OLDEST) {
        return Err(version_error(format!(
            "Python {} ({origin}) has reached its end of life and gets no security fixes: \
             paas builds 3.{OLDEST} and newer. Change the version in {origin} to at least \
             3.{OLDEST}, ideally {newest}",
            version.minor_string()
        )));
    }
    let Some((_, latest_patch)) =
        KNOWN.iter().find(|(minor, _)| version.major == 3 && *minor == version.minor)
    else {
        return Err(version_error(format!(
            "Python {version} ({origin}) is not a Python version paas knows: the known ones are \
             {}. Check it is released, or change {origin} to one of them, e.g. {newest}",
            known_list()
        )));
    };
    match version.patch {
        Some(patch) if patch > *latest_patch => {
            return Err(version_error(format!(
                "Python {version} ({origin}) does not exist: the newest {} release paas knows is \
                 {}.{latest_patch}. Name only the minor version, `{}`, to get the newest",
                version.minor_string(),
                version.minor_string(),
                version.minor_string()
            )));
        }
        Some(patch) if patch < *latest_patch => warnings.push(format!(
            "{origin} pins Python {version}; {}.{latest_patch} has the newer fixes. Name only the \
             minor version, `{}`, to follow them",
            version.minor_string(),
            version.minor_string()
        )),
        _ => {}
    }
    if version.minor == OLDEST {
        warnings.push(format!(
            "Python 3.{OLDEST} reaches its end of life in October 2026; move to a newer version \
             soon"
        ));
    }
    Ok(())
}

fn known_list() -> String {
    KNOWN.iter().map(|(minor, _)| format!("3.{minor}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::tree;

    fn ask(files: &[(&str, &str)], manager: Manager) -> Result<Option<Request>, String> {
        let dir = tree(files);
        let mut warnings = Vec::new();
        requested(&App::new(dir.path()), manager, &mut warnings).map_err(|e| e.to_string())
    }

    fn version(files: &[(&str, &str)]) -> String {
        ask(files, Manager::Pip).unwrap().map(|r| format!("{} {}", r.version, r.origin)).unwrap()
    }

    fn refusal(files: &[(&str, &str)], manager: Manager) -> String {
        ask(files, manager).unwrap_err()
    }

    #[test]
    fn versions_are_read_in_herokus_order() {
        assert_eq!(
            version(&[(".python-version", "# comment\n  3.13 \r\n")]),
            "3.13 .python-version"
        );
        assert_eq!(version(&[(".python-version", "3.14.2\n")]), "3.14.2 .python-version");
        // runtime.txt wins over .python-version, as on Heroku.
        let both = [("runtime.txt", "# old\n  python-3.13  \n "), (".python-version", "3.9\n")];
        assert_eq!(version(&both), "3.13 runtime.txt");
        // Pipenv's lock: the full version first.
        let lock = r#"{"_meta": {"requires": {"python_version": "3.12", "python_full_version": "3.10.0"}}}"#;
        let pipenv = ask(&[("Pipfile.lock", lock)], Manager::Pipenv).unwrap().unwrap();
        assert_eq!((pipenv.version.to_string(), pipenv.origin), ("3.10.0".into(), "Pipfile.lock"));
        assert_eq!(ask(&[("Pipfile.lock", lock)], Manager::Pip).unwrap(), None);
        assert_eq!(ask(&[("requirements.txt", "")], Manager::Pip).unwrap(), None);
    }

    #[test]
    fn bad_versions_are_refused_with_the_reason() {
        let pip = Manager::Pip;
        assert!(refusal(&[(".python-version", "3.9\n")], pip).contains("end of life"));
        assert!(refusal(&[("runtime.txt", "python-2.7.18\n")], pip).contains("end of life"));
        assert!(refusal(&[(".python-version", "3.999\n")], pip).contains("not a Python version"));
        assert!(refusal(&[(".python-version", "3.12.999\n")], pip).contains("does not exist"));
        let invalid = refusal(&[(".python-version", "\u{200b}python -\t3.12.0\x1b[0m\n")], pip);
        assert!(invalid.contains("found `\u{fffd}python -\t3.12.0\u{fffd}[0m`"), "{invalid}");
        for bad in ["^3.12", "3.12.*", "3", "03.12", "python-3.12", "\"3.12\""] {
            let message = refusal(&[(".python-version", bad)], pip);
            assert!(message.contains("invalid Python version"), "{bad}: {message}");
        }
        assert!(refusal(&[(".python-version", "")], pip).contains("no Python version"));
        let many = refusal(&[(".python-version", "3.12\n  # x\n  2.7  \n")], pip);
        assert!(many.contains("several Python versions in .python-version (3.12, 2.7)"), "{many}");
        let bom = refusal(&[(".python-version", "\u{feff}# with BOM\r\n3.12\r\n")], pip);
        assert!(bom.contains("UTF-8 with a BOM"), "{bom}");
        let misspelled = [(".python-version", "3.14\n"), (".python-version ", "# oops\n")];
        assert!(refusal(&misspelled, pip).contains("misspelled"));
        let runtime = refusal(&[("runtime.txt", "python-3.12.0\x1b\n\0\0\n")], pip);
        assert!(runtime.contains("invalid Python version in runtime.txt"), "{runtime}");
        let lock = r#"{"_meta": {"requires": {"python_version": "^3.12"}}}"#;
        let wildcard = refusal(&[("Pipfile.lock", lock)], Manager::Pipenv);
        assert!(wildcard.contains("found `^3.12`"), "{wildcard}");
        assert!(
            refusal(&[("Pipfile.lock", "INVALID")], Manager::Pipenv).contains("not valid JSON")
        );
    }

    #[test]
    fn uv_needs_python_version() {
        assert!(refusal(&[("uv.lock", "")], Manager::Uv).contains("uv python pin"));
        let both = [("runtime.txt", "python-3.11\n"), (".python-version", "3.12\n")];
        assert!(refusal(&both, Manager::Uv).contains("runtime.txt is not used with uv"));
    }

    #[test]
    fn warnings_for_old_patches_deprecation_and_no_version() {
        let dir = tree(&[("runtime.txt", "python-3.10.0\n")]);
        let mut warnings = Vec::new();
        requested(&App::new(dir.path()), Manager::Pip, &mut warnings).unwrap();
        let all = warnings.join("\n");
        assert!(all.contains("runtime.txt is deprecated"), "{all}");
        assert!(all.contains("3.10.21 has the newer fixes"), "{all}");
        assert!(all.contains("end of life in October 2026"), "{all}");

        let dir = tree(&[("requirements.txt", "")]);
        let mut warnings = Vec::new();
        requested(&App::new(dir.path()), Manager::Pip, &mut warnings).unwrap();
        assert!(warnings[0].starts_with("no Python version is named"), "{warnings:?}");
    }
}
