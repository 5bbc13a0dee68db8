//! Builder settings: which base images to build on, the CA bundle builds trust, the time limit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::BuildError;
use crate::providers::python_version::{DEFAULT_MINOR, Version};

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
            ImageRole::Python | ImageRole::PythonBuild => ("python:{v}-slim", Some("3.14")),
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

    /// The offline stack image for this role, which `auto` uses when the engine has it.
    pub fn local_image(self) -> &'static str {
        self.local().0
    }

    /// The roles that must all be local for this one to be: Python's runtime and install
    /// images go together, since the virtualenv built in one runs in the other and so needs
    /// the same interpreter at the same path.
    fn pair(self) -> &'static [ImageRole] {
        match self {
            ImageRole::Python | ImageRole::PythonBuild => {
                &[ImageRole::Python, ImageRole::PythonBuild]
            }
            ImageRole::Node => &[ImageRole::Node],
            ImageRole::Go => &[ImageRole::Go],
            ImageRole::Ruby => &[ImageRole::Ruby],
            ImageRole::Static => &[ImageRole::Static],
            ImageRole::Stack => &[ImageRole::Stack],
        }
    }

    /// Whether `image` is this role's official image, at any version.
    fn is_official(self, image: &str) -> bool {
        let (template, _) = self.official();
        match template.split_once("{v}") {
            Some((before, after)) => {
                image.len() > before.len() + after.len()
                    && image.starts_with(before)
                    && image.ends_with(after)
            }
            None => image == template,
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
    /// For each role, the local image when the Docker engine has it, else the official one:
    /// a server with the stack images built uses them, any other pulls.
    #[default]
    Auto,
    /// The official Docker Hub images (`python:3.12-slim`, …), pulled when missing.
    Official,
    /// The `paas/*` stack images `deploy/stack/build.sh` builds offline.
    Local,
}

/// The base image for each role: a source, and per-role pins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BaseImages {
    pub source: ImageSource,
    /// Images pinned by `PAAS_IMAGE_*`; they win over the source and over the app's
    /// requested runtime version.
    pub overrides: BTreeMap<ImageRole, String>,
    /// For [`ImageSource::Auto`]: the roles whose local image the Docker engine has. The
    /// builder looks at each build, so an image built after the server started is used;
    /// left empty (as by `paas build --plan`, which asks no engine), every role is official.
    pub found_locally: BTreeSet<ImageRole>,
    /// For [`ImageSource::Auto`]: the Python minor versions (`13` for 3.13) whose pair of
    /// local images (runtime and build, one Debian suite) the engine has.
    pub local_pythons: BTreeSet<u32>,
    /// When the Python version an app asks for has no local image, build with the nearest
    /// newer one that has, saying so in the log (`PAAS_PYTHON_ALLOW_NEWER=1`). Off, the
    /// build fails naming the versions there are: never a silent substitution.
    pub python_allow_newer: bool,
}

/// The offline Python images: one Debian suite for each Python minor version Debian ships
/// as its `python3` (docs/stack.md), runtime and build image built alike.
pub(crate) const LOCAL_PYTHONS: [(u32, &str); 3] =
    [(11, "bookworm"), (13, "trixie"), (14, "forky")];

/// The images a Python app builds and runs on, and what the log says about the choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PythonImages {
    pub runtime: String,
    pub build: String,
    /// `Using Python 3.13 from paas/python:trixie, as .python-version asks`.
    pub note: String,
    /// A substitution the developer should know of (a newer minor, Debian's patch release).
    pub warning: Option<String>,
}

/// The image chosen for a role, and the runtime version it provides when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageChoice {
    pub image: String,
    /// A line for the log and the plan saying which version is used and why.
    pub note: Option<String>,
}

impl BaseImages {
    pub fn auto() -> BaseImages {
        BaseImages::default()
    }

    pub fn official() -> BaseImages {
        BaseImages { source: ImageSource::Official, ..BaseImages::default() }
    }

    pub fn local() -> BaseImages {
        BaseImages { source: ImageSource::Local, ..BaseImages::default() }
    }

    /// `PAAS_BASE_IMAGES` (`auto`, `official` or `local`) and the `PAAS_IMAGE_*` pins, read
    /// through `lookup` so tests need not touch the process environment.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<BaseImages, BuildError> {
        let source = match lookup("PAAS_BASE_IMAGES").as_deref().map(str::trim) {
            None | Some("") | Some("auto") => ImageSource::Auto,
            Some("official") => ImageSource::Official,
            Some("local") => ImageSource::Local,
            Some(other) => {
                return Err(BuildError::InvalidRequest(format!(
                    "PAAS_BASE_IMAGES={other:?}: use `auto` (the local images where they \
                     exist), `official` (Docker Hub images) or `local` (the paas/* stack \
                     images deploy/stack/build.sh builds)"
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
        let python_allow_newer = match lookup("PAAS_PYTHON_ALLOW_NEWER").as_deref().map(str::trim) {
            None | Some("" | "0" | "false" | "no") => false,
            Some("1" | "true" | "yes") => true,
            Some(other) => {
                return Err(BuildError::InvalidRequest(format!(
                    "PAAS_PYTHON_ALLOW_NEWER={other:?}: give 1 or 0"
                )));
            }
        };
        Ok(BaseImages { source, overrides, python_allow_newer, ..BaseImages::default() })
    }

    /// The Python minor versions this server has local images for.
    pub(crate) fn python_minors_here(&self) -> Vec<u32> {
        match self.source {
            ImageSource::Official => Vec::new(),
            ImageSource::Local => LOCAL_PYTHONS.iter().map(|(minor, _)| *minor).collect(),
            ImageSource::Auto => self.local_pythons.iter().copied().collect(),
        }
    }

    /// The Python images for an app that asks for `requested` (`None`: the default). A
    /// version with no image here fails, naming those there are, unless the operator allows
    /// the nearest newer one; an exact release is kept where the image has it (official
    /// tags), and said when the local image has Debian's release of that minor instead.
    pub(crate) fn python(
        &self,
        requested: Option<(Version, &str)>,
    ) -> Result<PythonImages, BuildError> {
        let default = Version { major: 3, minor: DEFAULT_MINOR, patch: None };
        // `asked`: who wants this version; `why`: the same, to end a sentence.
        let (wanted, asked, why) = match requested {
            Some((version, origin)) => (version, origin.to_string(), format!("as {origin} asks")),
            None => (default, "the default".to_string(), "the default".to_string()),
        };
        let chosen = self.python_by_version(wanted, &asked, &why, requested.is_none());
        let runtime_pin = self.overrides.get(&ImageRole::Python);
        let build_pin = self.overrides.get(&ImageRole::PythonBuild);
        if runtime_pin.is_none() && build_pin.is_none() {
            return chosen;
        }
        // A pin wins over the version; the image not pinned is the one the version picks,
        // or the pinned one when none fits. Both must have the same Python at the same path.
        let pinned = runtime_pin.or(build_pin).cloned().unwrap_or_default();
        let chosen = chosen.ok();
        let runtime = runtime_pin.cloned().or_else(|| chosen.as_ref().map(|c| c.runtime.clone()));
        let build = build_pin.cloned().or_else(|| chosen.as_ref().map(|c| c.build.clone()));
        let runtime = runtime.unwrap_or_else(|| pinned.clone());
        let build = build.unwrap_or(pinned);
        let vars: Vec<&str> =
            [(runtime_pin, ImageRole::Python), (build_pin, ImageRole::PythonBuild)]
                .iter()
                .filter(|(pin, _)| pin.is_some())
                .map(|(_, role)| role.env_var())
                .collect();
        let note = format!(
            "{} pins the Python images: {runtime} runs the app, {build} installs it, and \
             their Python is the one the app gets ({asked}: Python {wanted})",
            vars.join(" and ")
        );
        let warning = (runtime_pin.is_none() || build_pin.is_none()).then(|| {
            format!(
                "only {} is pinned: {runtime} and {build} must have the same Python at the same \
                 path, since the virtualenv built in one runs in the other",
                vars.join("")
            )
        });
        Ok(PythonImages { runtime, build, note, warning })
    }

    /// [`python`](Self::python)'s choice when no `PAAS_IMAGE_PYTHON*` pin decides.
    fn python_by_version(
        &self,
        wanted: Version,
        asked: &str,
        why: &str,
        is_default: bool,
    ) -> Result<PythonImages, BuildError> {
        let here = self.python_minors_here();
        let local = |minor: u32, note: &str, warning: Option<String>| {
            let suite = LOCAL_PYTHONS.iter().find(|(m, _)| *m == minor).map_or("", |(_, s)| *s);
            PythonImages {
                runtime: format!("paas/python:{suite}"),
                build: format!("paas/python-build:{suite}"),
                note: format!(
                    "Using Python 3.{minor} from paas/python:{suite} (Debian {suite}), {note}"
                ),
                warning,
            }
        };
        if wanted.major == 3 && here.contains(&wanted.minor) {
            let warning = wanted.patch.map(|_| {
                format!(
                    "{asked} pins Python {wanted}; the local image has Debian's release of \
                     Python {}, which the app builds and runs on (official images keep exact \
                     releases: PAAS_BASE_IMAGES=official)",
                    wanted.minor_string()
                )
            });
            return Ok(local(wanted.minor, why, warning));
        }
        if is_default && let Some(newest) = here.iter().max() {
            let note = format!(
                "the newest the local images have (the default, 3.{DEFAULT_MINOR}, has none here)"
            );
            return Ok(local(*newest, &note, None));
        }
        let newer = here.iter().copied().filter(|m| wanted.major == 3 && *m > wanted.minor).min();
        if let (true, Some(newer)) = (self.python_allow_newer, newer) {
            let warning = format!(
                "Python {wanted} ({asked}) has no local image; PAAS_PYTHON_ALLOW_NEWER lets it \
                 build with Python 3.{newer}, the nearest newer one. Change the version the app \
                 asks for to 3.{newer} to make this choice your own"
            );
            return Ok(local(newer, "in place of the version asked for", Some(warning)));
        }
        if self.source == ImageSource::Local {
            let have: Vec<String> = here.iter().map(|m| format!("3.{m}")).collect();
            return Err(BuildError::Python {
                code: "python_version_unavailable",
                message: format!(
                    "Python {wanted} ({asked}) has no image on this server: its local images \
                     have Python {}. Change the version the app asks for to one of them; or \
                     the operator may allow the nearest newer version \
                     (PAAS_PYTHON_ALLOW_NEWER=1) or use official images \
                     (PAAS_BASE_IMAGES=official)",
                    have.join(", ")
                ),
            });
        }
        let tag = format!("python:{wanted}-slim");
        Ok(PythonImages {
            runtime: tag.clone(),
            build: tag.clone(),
            note: format!("Using Python {wanted} ({tag}), {why}"),
            warning: None,
        })
    }

    /// Whether `role` is built on its local image.
    fn uses_local(&self, role: ImageRole) -> bool {
        match self.source {
            ImageSource::Official => false,
            ImageSource::Local => true,
            ImageSource::Auto => role.pair().iter().all(|r| self.found_locally.contains(r)),
        }
    }

    /// With `auto`, why the build uses `image`, for the build log; `None` for an image no
    /// role chose (a pin, paas.toml's) or another source.
    pub(crate) fn explain(&self, image: &str) -> Option<String> {
        if self.source != ImageSource::Auto || self.overrides.values().any(|pin| pin == image) {
            return None;
        }
        // Python's local images come in one pair per Debian suite, chosen by version.
        let python_suite = LOCAL_PYTHONS.iter().any(|(_, suite)| {
            image == format!("paas/python:{suite}") || image == format!("paas/python-build:{suite}")
        });
        if python_suite {
            return Some(format!("Using base image {image} (found locally; --base-images auto)"));
        }
        if ImageRole::Python.is_official(image) {
            let here: Vec<String> =
                self.python_minors_here().iter().map(|m| format!("3.{m}")).collect();
            let here = if here.is_empty() { "none".to_string() } else { here.join(", ") };
            return Some(format!(
                "Using base image {image} (the local Python images have {here}; --base-images \
                 auto)"
            ));
        }
        let role = ImageRole::ALL.into_iter().find(|role| {
            if self.uses_local(*role) {
                role.local_image() == image
            } else {
                role.is_official(image)
            }
        })?;
        if self.uses_local(role) {
            return Some(format!("Using base image {image} (found locally; --base-images auto)"));
        }
        let missing: Vec<&str> = role
            .pair()
            .iter()
            .filter(|r| !self.found_locally.contains(r))
            .map(|r| r.local_image())
            .collect();
        Some(format!(
            "Using base image {image} ({} not found locally; --base-images auto)",
            missing.join(" and ")
        ))
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
        if !self.uses_local(role) {
            let (template, default) = role.official();
            let version = requested.map(|r| r.version.as_str()).or(default);
            let image = template.replace("{v}", version.unwrap_or_default());
            let note = version.filter(|_| !language.is_empty()).map(|v| match requested {
                Some(r) => format!("Using {language} {v} ({image}), as {} asks", r.source),
                None => format!("Using {language} {v} ({image}), the default"),
            });
            return ImageChoice { image, note };
        }
        let (image, has) = role.local();
        let note = has.filter(|_| !language.is_empty()).map(|has| match requested {
            Some(r) if !version_matches(&r.version, has) => format!(
                "{} asks for {language} {}, but the local image {image} has {language} {has}: \
                 building with {has}",
                r.source, r.version
            ),
            _ => format!("Using {language} {has} from the local image {image}"),
        });
        ImageChoice { image: image.to_string(), note }
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
    /// Adds the CA bundle after every `FROM` of an app's own Dockerfile, whatever its base
    /// (`PAAS_BUILD_CA_INJECT=1`); Dockerfiles on paas stack images get it regardless.
    pub ca_inject: bool,
    /// A build that runs longer is stopped and fails (`PAAS_BUILD_TIMEOUT`).
    pub timeout: Duration,
}

impl Default for BuilderConfig {
    fn default() -> BuilderConfig {
        BuilderConfig {
            base_images: BaseImages::auto(),
            ca_file: None,
            ca_inject: false,
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
        if let Some(value) = lookup("PAAS_BUILD_CA_INJECT") {
            config.ca_inject = match value.trim() {
                "1" | "true" | "yes" => true,
                "" | "0" | "false" | "no" => false,
                _ => {
                    return Err(BuildError::InvalidRequest(format!(
                        "PAAS_BUILD_CA_INJECT={value:?}: give 1 or 0"
                    )));
                }
            };
        }
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
        assert_eq!(default.base_images.source, ImageSource::Auto);
        for (value, source) in [
            ("auto", ImageSource::Auto),
            (" official ", ImageSource::Official),
            ("local", ImageSource::Local),
        ] {
            let config = BuilderConfig::from_lookup(&env(&[("PAAS_BASE_IMAGES", value)]));
            assert_eq!(config.unwrap().base_images.source, source, "{value}");
        }
        let error = BuilderConfig::from_lookup(&env(&[("PAAS_BASE_IMAGES", "Auto")])).unwrap_err();
        assert!(error.to_string().contains("use `auto`"), "{error}");

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

    #[test]
    fn python_versions_pick_their_debian_suite_or_fail_naming_those_here() {
        let v = |minor, patch| Version { major: 3, minor, patch };
        let local = BaseImages::local();
        let pick = local.python(Some((v(13, None), ".python-version"))).unwrap();
        assert_eq!(
            (pick.runtime.as_str(), pick.build.as_str()),
            ("paas/python:trixie", "paas/python-build:trixie")
        );
        assert_eq!(
            pick.note,
            "Using Python 3.13 from paas/python:trixie (Debian trixie), as .python-version asks"
        );
        assert_eq!(local.python(None).unwrap().runtime, "paas/python:forky");
        // An exact release: the minor's image, and a warning saying so.
        let pinned = local.python(Some((v(11, Some(4)), "runtime.txt"))).unwrap();
        assert_eq!(pinned.runtime, "paas/python:bookworm");
        assert!(pinned.warning.unwrap().starts_with("runtime.txt pins Python 3.11.4;"));

        let error = local.python(Some((v(12, None), ".python-version"))).unwrap_err().to_string();
        assert!(error.contains("Python 3.12 (.python-version) has no image on this server: its local images have Python 3.11, 3.13, 3.14"), "{error}");
        let newer = BaseImages { python_allow_newer: true, ..BaseImages::local() };
        let pick = newer.python(Some((v(12, None), ".python-version"))).unwrap();
        assert_eq!(pick.runtime, "paas/python:trixie");
        assert!(
            pick.warning
                .unwrap()
                .contains("PAAS_PYTHON_ALLOW_NEWER lets it build with Python 3.13")
        );
        assert!(newer.python(Some((v(15, None), ".python-version"))).is_err());

        // auto: the pairs the engine has; the newest of them by default; else official.
        let auto = BaseImages { local_pythons: BTreeSet::from([11]), ..BaseImages::auto() };
        let pick = auto.python(None).unwrap();
        assert_eq!(pick.runtime, "paas/python:bookworm");
        assert!(pick.note.contains("the newest the local images have"), "{}", pick.note);
        assert_eq!(auto.python(Some((v(13, None), "x"))).unwrap().runtime, "python:3.13-slim");
        let official = BaseImages::official().python(Some((v(12, Some(4)), "x"))).unwrap();
        assert_eq!(
            (official.runtime.as_str(), official.build.as_str()),
            ("python:3.12.4-slim", "python:3.12.4-slim")
        );
        assert_eq!(BaseImages::official().python(None).unwrap().runtime, "python:3.14-slim");

        // A pin wins; a half pin keeps the version's image for the other, with a warning.
        let mut pinned = BaseImages::local();
        pinned.overrides.insert(ImageRole::PythonBuild, "corp/python-build:3.13".into());
        let pick = pinned.python(Some((v(13, None), ".python-version"))).unwrap();
        assert_eq!(pick.runtime, "paas/python:trixie");
        assert_eq!(pick.build, "corp/python-build:3.13");
        assert!(pick.warning.unwrap().contains("must have the same Python"));
        // Even where no image has the version, the pin decides.
        let pick = pinned.python(Some((v(12, None), ".python-version"))).unwrap();
        assert_eq!(pick.runtime, "corp/python-build:3.13");

        let allow =
            |value: &str| BaseImages::from_lookup(&env(&[("PAAS_PYTHON_ALLOW_NEWER", value)]));
        assert!(allow("1").unwrap().python_allow_newer && !allow("0").unwrap().python_allow_newer);
        assert!(allow("maybe").is_err());
    }

    #[test]
    fn auto_takes_the_local_image_where_the_engine_has_it() {
        let wants = Requested { version: "3.12".into(), source: ".python-version".into() };
        let mut auto = BaseImages::auto();
        // Nothing found (or nothing asked, as `paas build --plan` does): the official images.
        assert_eq!(auto.choose(ImageRole::Python, Some(&wants)).image, "python:3.12-slim");
        assert_eq!(
            auto.explain("python:3.12-slim").unwrap(),
            "Using base image python:3.12-slim (the local Python images have none; \
             --base-images auto)"
        );

        auto.found_locally = BTreeSet::from([ImageRole::Node, ImageRole::Python]);
        assert_eq!(auto.choose(ImageRole::Node, None).image, "paas/node:bookworm");
        assert_eq!(
            auto.explain("paas/node:bookworm").unwrap(),
            "Using base image paas/node:bookworm (found locally; --base-images auto)"
        );
        // Python's two images go together: one of them alone is not used.
        assert_eq!(auto.choose(ImageRole::Python, None).image, "python:3.14-slim");
        auto.local_pythons = BTreeSet::from([11, 13]);
        let why = auto.explain("python:3.12-slim").unwrap();
        assert!(why.contains("(the local Python images have 3.11, 3.13;"), "{why}");
        let why = auto.explain("paas/python-build:trixie").unwrap();
        assert!(why.contains("(found locally;"), "{why}");
        assert_eq!(auto.choose(ImageRole::Stack, None).image, "debian:bookworm-slim");
        assert!(auto.explain("debian:bookworm-slim").unwrap().contains("paas/stack:bookworm"));

        auto.found_locally.insert(ImageRole::PythonBuild);
        let choice = auto.choose(ImageRole::Python, Some(&wants));
        assert_eq!(choice.image, "paas/python:bookworm");
        assert!(choice.note.unwrap().contains("building with 3.11"));
        assert_eq!(auto.choose(ImageRole::PythonBuild, None).image, "paas/python-build:bookworm");

        // A pin wins, and is no choice of auto's to explain.
        auto.overrides.insert(ImageRole::Node, "corp/node:20".into());
        assert_eq!(auto.choose(ImageRole::Node, None).image, "corp/node:20");
        assert_eq!(auto.explain("corp/node:20"), None);
        // Other sources explain nothing.
        assert_eq!(BaseImages::local().explain("paas/node:bookworm"), None);
    }
}
