//! Builder settings: which base images to build on, the CA bundle builds trust, the time limit.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::BuildError;

/// What a base image is for. Each role has its own `PAAS_IMAGE_*` override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageRole {
    /// Runs Python apps.
    Python,
    /// Installs Python dependencies (may have a compiler); its virtualenv is copied into
    /// the `Python` image, so both must have the same interpreter path.
    PythonBuild,
    Node,
    /// The Go toolchain; Go binaries then run on `Stack`.
    Go,
    Ruby,
    /// Serves static sites (`busybox httpd`).
    Static,
    /// A plain OS image: Procfile-only apps and compiled Go binaries run on it.
    Stack,
}

impl ImageRole {
    pub const ALL: [ImageRole; 7] = [
        ImageRole::Python,
        ImageRole::PythonBuild,
        ImageRole::Node,
        ImageRole::Go,
        ImageRole::Ruby,
        ImageRole::Static,
        ImageRole::Stack,
    ];

    /// The environment variable that pins this role's image.
    pub fn env_var(self) -> &'static str {
        match self {
            ImageRole::Python => "PAAS_IMAGE_PYTHON",
            ImageRole::PythonBuild => "PAAS_IMAGE_PYTHON_BUILD",
            ImageRole::Node => "PAAS_IMAGE_NODE",
            ImageRole::Go => "PAAS_IMAGE_GO",
            ImageRole::Ruby => "PAAS_IMAGE_RUBY",
            ImageRole::Static => "PAAS_IMAGE_STATIC",
            ImageRole::Stack => "PAAS_IMAGE_STACK",
        }
    }

    /// Official image with `{v}` for the runtime version, and the version used when the app
    /// asks for none.
    fn official(self) -> (&'static str, Option<&'static str>) {
        match self {
            ImageRole::Python | ImageRole::PythonBuild => ("python:{v}-slim", Some("3.12")),
            ImageRole::Node => ("node:{v}-slim", Some("22")),
            ImageRole::Go => ("golang:{v}-bookworm", Some("1.23")),
            ImageRole::Ruby => ("ruby:{v}-slim", Some("3.3")),
            ImageRole::Static => ("busybox:stable", None),
            ImageRole::Stack => ("debian:bookworm-slim", None),
        }
    }

    /// The offline stack image (deploy/stack/) and the runtime version it carries, as listed
    /// in docs/stack.md: Debian bookworm's packages, one version per language.
    fn local(self) -> (&'static str, Option<&'static str>) {
        match self {
            ImageRole::Python => ("paas/python:bookworm", Some("3.11")),
            ImageRole::PythonBuild => ("paas/python-build:bookworm", Some("3.11")),
            ImageRole::Node => ("paas/node:bookworm", Some("18")),
            ImageRole::Go => ("paas/go:bookworm", Some("1.19")),
            ImageRole::Ruby => ("paas/ruby:bookworm", Some("3.1")),
            ImageRole::Static => ("paas/static:bookworm", None),
            ImageRole::Stack => ("paas/stack:bookworm", None),
        }
    }

    fn language(self) -> &'static str {
        match self {
            ImageRole::Python | ImageRole::PythonBuild => "Python",
            ImageRole::Node => "Node.js",
            ImageRole::Go => "Go",
            ImageRole::Ruby => "Ruby",
            ImageRole::Static | ImageRole::Stack => "",
        }
    }
}

impl fmt::Display for ImageRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        f.write_str(&name)
    }
}

/// Where base images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageSource {
    /// The official Docker Hub images (`python:3.12-slim`, …), pulled when missing.
    #[default]
    Official,
    /// The `paas/*:bookworm` images `deploy/stack/build.sh` builds offline.
    Local,
}

/// The base image for each role: a source, and per-role pins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BaseImages {
    pub source: ImageSource,
    /// Images pinned by `PAAS_IMAGE_*`; they win over the source and over the app's
    /// requested runtime version.
    pub overrides: BTreeMap<ImageRole, String>,
}

/// The image chosen for a role, and the runtime version it provides when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageChoice {
    pub image: String,
    /// A line for the log and the plan saying which version is used and why.
    pub note: Option<String>,
}

impl BaseImages {
    pub fn official() -> BaseImages {
        BaseImages::default()
    }

    pub fn local() -> BaseImages {
        BaseImages { source: ImageSource::Local, overrides: BTreeMap::new() }
    }

    /// `PAAS_BASE_IMAGES` (`official` or `local`) and the `PAAS_IMAGE_*` pins, read through
    /// `lookup` so tests need not touch the process environment.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<BaseImages, BuildError> {
        let source = match lookup("PAAS_BASE_IMAGES").as_deref().map(str::trim) {
            None | Some("") | Some("official") => ImageSource::Official,
            Some("local") => ImageSource::Local,
            Some(other) => {
                return Err(BuildError::InvalidRequest(format!(
                    "PAAS_BASE_IMAGES={other:?}: use `official` (Docker Hub images) or `local` \
                     (the paas/*:bookworm images deploy/stack/build.sh builds)"
                )));
            }
        };
        let overrides = ImageRole::ALL
            .iter()
            .filter_map(|role| {
                let image = lookup(role.env_var())?;
                let image = image.trim();
                (!image.is_empty()).then(|| (*role, image.to_string()))
            })
            .collect();
        Ok(BaseImages { source, overrides })
    }

    /// The image for `role`, following the app's requested runtime `version` (already
    /// normalised to what image tags use, e.g. `3.12`) when the source allows.
    pub(crate) fn choose(&self, role: ImageRole, requested: Option<&Requested>) -> ImageChoice {
        let language = role.language();
        if let Some(image) = self.overrides.get(&role) {
            let note = requested.map(|r| {
                format!(
                    "{} pins the image to {image}; the {language} {} that {} asks for is not \
                     applied",
                    role.env_var(),
                    r.version,
                    r.source
                )
            });
            return ImageChoice { image: image.clone(), note };
        }
        match self.source {
            ImageSource::Official => {
                let (template, default) = role.official();
                let version = requested.map(|r| r.version.as_str()).or(default);
                let image = template.replace("{v}", version.unwrap_or_default());
                let note = version.filter(|_| !language.is_empty()).map(|v| match requested {
                    Some(r) => format!("Using {language} {v} ({image}), as {} asks", r.source),
                    None => format!("Using {language} {v} ({image}), the default"),
                });
                ImageChoice { image, note }
            }
            ImageSource::Local => {
                let (image, has) = role.local();
                let note = has.filter(|_| !language.is_empty()).map(|has| match requested {
                    Some(r) if !version_matches(&r.version, has) => format!(
                        "{} asks for {language} {}, but the local image {image} has {language} \
                         {has}: building with {has}",
                        r.source, r.version
                    ),
                    _ => format!("Using {language} {has} from the local image {image}"),
                });
                ImageChoice { image: image.to_string(), note }
            }
        }
    }
}

/// `3.11` satisfies a request for `3.11` or `3`; `3.11` does not satisfy `3.12`.
fn version_matches(requested: &str, has: &str) -> bool {
    has == requested || has.starts_with(&format!("{requested}."))
}

/// A runtime version the app asks for, and the file that asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Requested {
    pub version: String,
    pub source: String,
}

/// Everything the builder needs from the server's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderConfig {
    pub base_images: BaseImages,
    /// A CA bundle (PEM) every build step trusts and images keep, for servers that reach
    /// package indexes through a TLS-intercepting proxy (`PAAS_BUILD_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// A build that runs longer is stopped and fails (`PAAS_BUILD_TIMEOUT`).
    pub timeout: Duration,
}

impl Default for BuilderConfig {
    fn default() -> BuilderConfig {
        BuilderConfig {
            base_images: BaseImages::official(),
            ca_file: None,
            timeout: Duration::from_secs(15 * 60),
        }
    }
}

impl BuilderConfig {
    /// Settings from `PAAS_BASE_IMAGES`, `PAAS_IMAGE_*`, `PAAS_BUILD_CA_FILE` and
    /// `PAAS_BUILD_TIMEOUT` (seconds, or with an `s`/`m`/`h` suffix).
    pub fn from_env() -> Result<BuilderConfig, BuildError> {
        BuilderConfig::from_lookup(&|key| std::env::var(key).ok())
    }

    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BuilderConfig, BuildError> {
        let mut config = BuilderConfig {
            base_images: BaseImages::from_lookup(lookup)?,
            ..BuilderConfig::default()
        };
        config.ca_file =
            lookup("PAAS_BUILD_CA_FILE").filter(|path| !path.trim().is_empty()).map(PathBuf::from);
        if let Some(value) = lookup("PAAS_BUILD_TIMEOUT") {
            config.timeout = parse_duration(&value).ok_or_else(|| {
                BuildError::InvalidRequest(format!(
                    "PAAS_BUILD_TIMEOUT={value:?}: give seconds, or a number with s, m or h \
                     (e.g. 900 or 15m)"
                ))
            })?;
        }
        Ok(config)
    }
}

/// `900`, `90s`, `15m`, `1h`; zero is refused, since it would fail every build.
fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (number, unit) = match value.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => value.split_at(at),
        None => (value, "s"),
    };
    let number: u64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "s" => number,
        "m" => number.checked_mul(60)?,
        "h" => number.checked_mul(3600)?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn config_from_env() {
        let config = BuilderConfig::from_lookup(&env(&[
            ("PAAS_BASE_IMAGES", "local"),
            ("PAAS_IMAGE_NODE", "my/node:20"),
            ("PAAS_BUILD_TIMEOUT", "10m"),
            ("PAAS_BUILD_CA_FILE", "/etc/ca.pem"),
        ]))
        .unwrap();
        assert_eq!(config.base_images.source, ImageSource::Local);
        assert_eq!(config.base_images.overrides[&ImageRole::Node], "my/node:20");
        assert_eq!(config.timeout, Duration::from_secs(600));
        assert_eq!(config.ca_file, Some(PathBuf::from("/etc/ca.pem")));

        let default = BuilderConfig::from_lookup(&env(&[])).unwrap();
        assert_eq!(default, BuilderConfig::default());

        assert!(BuilderConfig::from_lookup(&env(&[("PAAS_BASE_IMAGES", "dockerhub")])).is_err());
        assert!(BuilderConfig::from_lookup(&env(&[("PAAS_BUILD_TIMEOUT", "0")])).is_err());
        assert!(BuilderConfig::from_lookup(&env(&[("PAAS_BUILD_TIMEOUT", "5 days")])).is_err());
    }

    #[test]
    fn images_follow_the_requested_version_where_they_can() {
        let wants = Requested { version: "3.12".into(), source: ".python-version".into() };
        let official = BaseImages::official().choose(ImageRole::Python, Some(&wants));
        assert_eq!(official.image, "python:3.12-slim");
        assert_eq!(BaseImages::official().choose(ImageRole::Node, None).image, "node:22-slim");

        let local = BaseImages::local().choose(ImageRole::Python, Some(&wants));
        assert_eq!(local.image, "paas/python:bookworm");
        let note = local.note.unwrap();
        assert!(note.contains("3.12") && note.contains("3.11"), "{note}");

        let mut pinned = BaseImages::local();
        pinned.overrides.insert(ImageRole::Python, "corp/python:3.12".into());
        let choice = pinned.choose(ImageRole::Python, Some(&wants));
        assert_eq!(choice.image, "corp/python:3.12");
        assert!(choice.note.unwrap().contains("PAAS_IMAGE_PYTHON"));
        assert_eq!(ImageRole::PythonBuild.to_string(), "python-build");
    }
}
