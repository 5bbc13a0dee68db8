//! Hints for failed builds: what the output of the failing step says, turned into what to do.
//!
//! Two failures are common enough to explain: a TLS certificate nobody trusts (the server sits
//! behind a proxy that re-signs TLS, and `PAAS_BUILD_CA_FILE` is missing or incomplete), and
//! Django's `collectstatic` stopping the build.

use std::path::Path;

use crate::dockerfile::{CA_BUILD_ARG, CA_CONTEXT_FILE};
use crate::{BuildPlan, Kind};

/// What tools print when TLS verification fails, lowercased: OpenSSL through Python, pip,
/// curl and git; GnuTLS through apt and git; Node and npm; Go; rustls through uv.
const UNTRUSTED: [&str; 14] = [
    "certificate_verify_failed",
    "certificate verify failed",
    "ssl certificate problem",
    "self-signed certificate",
    "self signed certificate",
    "unable to get local issuer certificate",
    "unable_to_get_issuer_cert_locally",
    "self_signed_cert_in_chain",
    "unable to verify the first certificate",
    "certificate signed by unknown authority",
    "unknownissuer",
    "server certificate verification failed",
    "certificate verification failed",
    "problem confirming the ssl certificate",
];

/// Quoted output is cut to this many characters, so a hint stays readable.
const QUOTE: usize = 160;

/// The two lines docs/builds.md gives a Dockerfile to trust the bundle.
pub(crate) const DOCKERFILE_CA_LINES: &str =
    "`ARG PAAS_CA_FILE=.paas-ca.pem` and `COPY $PAAS_CA_FILE /etc/ssl/certs/ca-certificates.crt`";

/// True when `line` is a tool saying that it did not trust a certificate.
pub(crate) fn untrusted_certificate(line: &str) -> bool {
    complaint_at(line).is_some()
}

/// The words about the certificate in `line`, without the retry messages and exception
/// reprs that tools wrap them in.
fn complaint(line: &str) -> &str {
    let words = complaint_at(line).map_or(line, |at| &line[at..]);
    let end = [" (", "'", "\""].iter().filter_map(|stop| words.find(stop)).min();
    end.map_or(words, |end| &words[..end]).trim_end_matches(['.', ',', ':', ' '])
}

/// Where in `line` the words about an untrusted certificate start.
fn complaint_at(line: &str) -> Option<usize> {
    // ASCII lowercasing keeps byte offsets, so the index fits `line` too.
    let lower = line.to_ascii_lowercase();
    UNTRUSTED.iter().filter_map(|needle| lower.find(needle)).min()
}

/// What the builder knows about a failed build.
pub(crate) struct Failure<'a> {
    pub plan: &'a BuildPlan,
    /// `PAAS_BUILD_CA_FILE`, when set.
    pub ca_file: Option<&'a Path>,
    /// paas added the bundle after every FROM of the app's own Dockerfile.
    pub ca_injected: bool,
    /// The instruction that failed, e.g. `RUN pip install -r requirements.txt`.
    pub step: &'a str,
    /// The failing step's own output, oldest first.
    pub output: &'a [String],
    /// Docker's message about the failure.
    pub message: &'a str,
}

impl Failure<'_> {
    /// The hint for this failure, if paas recognises it.
    pub(crate) fn hint(&self) -> Option<String> {
        if let Some(line) = self.output.iter().find(|l| untrusted_certificate(l)) {
            return Some(self.untrusted(line));
        }
        if untrusted_certificate(self.message) {
            return Some(self.untrusted(self.message));
        }
        self.missing_ca_file()
            .or_else(|| self.collectstatic())
            .or_else(|| self.described_step())
            .or_else(|| self.missing_system_library())
            .or_else(|| self.invalid_metadata())
            .or_else(|| self.stale_pipfile_lock())
    }

    /// `pipenv verify`: the lock's hash is not the Pipfile's.
    fn stale_pipfile_lock(&self) -> Option<String> {
        self.output.iter().any(|line| line.contains("Pipfile.lock is out-of-date")).then(|| {
            "Pipfile.lock does not match the Pipfile (its hash is out of date): run `pipenv \
             lock` and commit Pipfile.lock, so the build installs what was resolved."
                .to_string()
        })
    }

    /// pip refuses a release whose metadata breaks today's rules (Celery before 5.2.1).
    fn invalid_metadata(&self) -> Option<String> {
        self.output.iter().any(|line| line.contains("Please use pip<24.1")).then(|| {
            "A dependency's release has metadata that pip no longer accepts (Celery older than \
             5.2.1 is one): upgrade that dependency to a newer release."
                .to_string()
        })
    }

    /// A step the provider said what to do about (a Heroku hook, NLTK's downloader).
    fn described_step(&self) -> Option<String> {
        let command = self.step.strip_prefix("RUN ")?;
        self.plan.step_words.get(command).map(|words| words.on_failure.clone())
    }

    /// A package that compiles from source and lacks a C header or a `*-config` tool: the
    /// Aptfile installs Debian's development package.
    fn missing_system_library(&self) -> Option<String> {
        // Dockerfile apps and static sites read no Aptfile.
        if matches!(self.plan.kind, Kind::Dockerfile | Kind::Static) {
            return None;
        }
        let missing = self.output.iter().find_map(|line| {
            if let Some(at) = line.find(": No such file or directory")
                && let Some(header) = line[..at].rsplit([' ', ':']).next()
                && header.ends_with(".h")
            {
                return Some(header.to_string());
            }
            let config = line.split(|c: char| c.is_whitespace() || c == '\'' || c == '`');
            config
                .map(|word| word.trim_end_matches(['.', ',', ':', ';']))
                .filter(|word| word.ends_with("-config") && *word != "pkg-config")
                .find(|_| {
                    ["not found", "Could not find", "No such file or directory"]
                        .iter()
                        .any(|said| line.contains(said))
                })
                .map(str::to_string)
        })?;
        let example = if missing.starts_with("gdal") {
            "libgdal-dev"
        } else if missing.starts_with("pg_config") || missing.starts_with("libpq") {
            "libpq-dev"
        } else if missing.starts_with("sqlite3") {
            "libsqlite3-dev"
        } else {
            "the one with the -dev files"
        };
        Some(format!(
            "A package compiling from source could not find {missing}, which a Debian \
             development package provides: list it in an Aptfile beside your code (for this \
             one, {example}), or use a release of the package that has a pre-built wheel."
        ))
    }

    fn untrusted(&self, line: &str) -> String {
        let seen = format!("A TLS certificate was not trusted ({})", quote(complaint(line)));
        let dockerfile = self.plan.kind == Kind::Dockerfile;
        let copies_ca = self.ca_injected || self.plan.build_args.iter().any(|a| a == CA_BUILD_ARG);
        match self.ca_file {
            None => {
                let mut hint = format!(
                    "{seen}. If this server reaches the internet through a proxy that re-signs \
                     TLS, set PAAS_BUILD_CA_FILE on the paas server to a PEM bundle with the \
                     usual CAs and the proxy's CA; builds then trust it"
                );
                if dockerfile {
                    hint.push_str(&format!(
                        ", and a Dockerfile uses it with {DOCKERFILE_CA_LINES}"
                    ));
                }
                hint + "."
            }
            Some(path) if dockerfile && !copies_ca => format!(
                "{seen}. The bundle PAAS_BUILD_CA_FILE names is in the build context as \
                 {CA_CONTEXT_FILE}, but a Dockerfile build trusts it only if the Dockerfile \
                 copies it in: add {DOCKERFILE_CA_LINES} before the step that failed, or set \
                 PAAS_BUILD_CA_INJECT=1 on the server for paas to add it ({}).",
                path.display()
            ),
            Some(path) if dockerfile => format!(
                "{seen}, although the build has PAAS_BUILD_CA_FILE's bundle ({}). Add the \
                 CA that signed the certificate to that bundle, and point tools that carry \
                 their own CA list at it (PIP_CERT, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS).",
                path.display()
            ),
            Some(path) => format!(
                "{seen}, although the build trusts PAAS_BUILD_CA_FILE ({}): add the CA that \
                 signed the certificate to that bundle.",
                path.display()
            ),
        }
    }

    /// A Dockerfile that copies the CA bundle, on a server that sets none.
    fn missing_ca_file(&self) -> Option<String> {
        let mentions = self.message.contains(CA_CONTEXT_FILE) || self.step.contains(CA_BUILD_ARG);
        (self.plan.kind == Kind::Dockerfile && self.ca_file.is_none() && mentions).then(|| {
            format!(
                "The Dockerfile copies {CA_CONTEXT_FILE}, the CA bundle paas adds to the build \
                 context only when PAAS_BUILD_CA_FILE is set on the paas server, and this \
                 server does not set it."
            )
        })
    }

    /// Django's collectstatic failed: Django's own last words, and how to skip the step.
    fn collectstatic(&self) -> Option<String> {
        // Only the collectstatic paas runs, which DISABLE_COLLECTSTATIC skips.
        let (_, step) = self.plan.build_disabled_by.as_ref()?;
        if self.step.strip_prefix("RUN ") != Some(step.as_str()) {
            return None;
        }
        let said = django_message(self.output)
            .map(|l| format!(": {}", quote(l).trim_end_matches('.')))
            .unwrap_or_default();
        Some(format!(
            "Django's collectstatic failed{said}. Fix the error shown above, or skip this step \
             with the config var DISABLE_COLLECTSTATIC=1."
        ))
    }
}

/// What Django said last: the exception line of a traceback (`ValueError: …`, whose message
/// may go on for lines), else the last line.
fn django_message(output: &[String]) -> Option<&str> {
    let mut lines = output.iter().rev().map(|l| l.trim()).filter(|l| !l.is_empty());
    let last = lines.clone().next();
    // `Unknown command: 'collectstatic'`: django.contrib.staticfiles is not installed.
    let unknown = lines.clone().find(|l| l.starts_with("Unknown command:"));
    unknown.or_else(|| lines.find(|l| is_exception_line(l))).or(last)
}

/// `ValueError: …`, `django.core.exceptions.ImproperlyConfigured: …`, `CommandError: …`.
fn is_exception_line(line: &str) -> bool {
    let Some((name, _)) = line.split_once(": ") else {
        return false;
    };
    let class = name.rsplit('.').next().unwrap_or_default();
    class.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// `text` trimmed, and cut to [`QUOTE`] characters.
fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(QUOTE) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BaseImages;
    use crate::providers::test_support::plan_of;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn recognises_what_tools_say_about_untrusted_certificates() {
        for line in [
            "Could not fetch URL https://pypi.org/simple/six/: There was a problem confirming \
             the ssl certificate: ... [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
            "curl: (60) SSL certificate problem: self-signed certificate in certificate chain",
            "npm ERR! code SELF_SIGNED_CERT_IN_CHAIN",
            "go: example.com/x: tls: failed to verify certificate: x509: certificate signed by \
             unknown authority",
            "error: invalid peer certificate: UnknownIssuer",
            "fatal: unable to access 'https://x/': server certificate verification failed.",
            "Certificate verification failed: The certificate is NOT trusted.",
        ] {
            assert!(untrusted_certificate(line), "{line}");
        }
        assert!(!untrusted_certificate("ERROR: No matching distribution found for six"));
    }

    #[test]
    fn untrusted_certificates_name_the_setting() {
        let plan = plan_of(&[("requirements.txt", "six\n"), ("app.py", "")], &BaseImages::local())
            .unwrap();
        let output = lines(
            "Collecting six\nWARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection broken by 'SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in certificate chain (_ssl.c:992)'))': /simple/six/\nERROR: No matching distribution found for six",
        );
        let failure = Failure {
            plan: &plan,
            ca_file: None,
            ca_injected: false,
            step: "RUN pip install -r requirements.txt",
            output: &output,
            message: "The command '/bin/sh -c pip install' returned a non-zero code: 1",
        };
        let hint = failure.hint().unwrap();
        assert!(hint.contains("set PAAS_BUILD_CA_FILE"), "{hint}");
        let words = "(CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed \
                     certificate in certificate chain)";
        assert!(hint.contains(words), "only the words about the certificate: {hint}");

        let ca = Path::new("/etc/proxy.pem");
        let hint = Failure { ca_file: Some(ca), ..failure }.hint().unwrap();
        assert!(hint.contains("add the CA that signed") && hint.contains("/etc/proxy.pem"));
    }

    #[test]
    fn dockerfile_builds_are_told_the_two_lines() {
        let plan = plan_of(
            &[("Dockerfile", "FROM x\nRUN curl https://example.com\n")],
            &BaseImages::local(),
        )
        .unwrap();
        let output =
            lines("curl: (60) SSL certificate problem: unable to get local issuer certificate");
        let failure = Failure {
            plan: &plan,
            ca_file: Some(Path::new("/ca.pem")),
            ca_injected: false,
            step: "RUN curl https://example.com",
            output: &output,
            message: "returned a non-zero code: 60",
        };
        let hint = failure.hint().unwrap();
        assert!(hint.contains(".paas-ca.pem") && hint.contains("COPY $PAAS_CA_FILE"), "{hint}");

        let plan = plan_of(&[("Dockerfile", "FROM x\nARG PAAS_CA_FILE=.paas-ca.pem\nCOPY $PAAS_CA_FILE /etc/ssl/certs/ca-certificates.crt\n")], &BaseImages::local())
            .unwrap();
        let missing = Failure {
            plan: &plan,
            ca_file: None,
            ca_injected: false,
            step: "COPY $PAAS_CA_FILE /etc/ssl/certs/ca-certificates.crt",
            output: &[],
            message: "COPY failed: file not found in build context: stat .paas-ca.pem: file does not exist",
        };
        assert!(missing.hint().unwrap().contains("does not set it"));
    }

    #[test]
    fn collectstatic_failures_quote_django() {
        let settings = "STATIC_ROOT = 'static'\nWSGI_APPLICATION = 'site1.wsgi.application'\n";
        let plan = plan_of(
            &[("requirements.txt", "django\n"), ("manage.py", ""), ("site1/settings.py", settings)],
            &BaseImages::local(),
        )
        .unwrap();
        let output = lines(
            "Post-processing 'broken.css' failed!\n\nTraceback (most recent call last):\n  ...\n\
             ValueError: The file 'missing.png' could not be found with <Storage>.\n\n\
             The CSS file 'broken.css' references a file which could not be found:\n  \
             missing.png\n\nPlease check the URL references in this CSS file, particularly any\n\
             relative paths which might be pointing to the wrong location.\n",
        );
        let failure = Failure {
            plan: &plan,
            ca_file: None,
            ca_injected: false,
            step: "RUN python manage.py collectstatic --noinput",
            output: &output,
            message: "returned a non-zero code: 1",
        };
        let hint = failure.hint().unwrap();
        assert!(hint.contains("failed: ValueError: The file 'missing.png'"), "{hint}");
        assert!(hint.contains("<Storage>. Fix the error"), "{hint}");
        assert!(hint.contains("DISABLE_COLLECTSTATIC=1"), "{hint}");
        assert_eq!(Failure { step: "RUN pip install -r requirements.txt", ..failure }.hint(), None);
        // Without django.contrib.staticfiles there is no collectstatic: Django says so.
        let output = lines("Unknown command: 'collectstatic'\nType 'manage.py help' for usage.");
        let hint = Failure { output: &output, ..failure }.hint().unwrap();
        assert!(hint.contains("failed: Unknown command: 'collectstatic'"), "{hint}");
    }

    #[test]
    fn missing_headers_and_config_tools_point_at_the_aptfile() {
        let plan = plan_of(&[("requirements.txt", "pysqlite3\n")], &BaseImages::local()).unwrap();
        let failure = |output: &[String]| {
            Failure {
                plan: &plan,
                ca_file: None,
                ca_injected: false,
                step: "RUN python -m venv /opt/venv && pip install -r requirements.txt",
                output,
                message: "returned a non-zero code: 1",
            }
            .hint()
        };
        let sqlite = lines(
            "      src/blob.h:4:10: fatal error: sqlite3.h: No such file or directory\n\
             error: command '/usr/bin/x86_64-linux-gnu-gcc' failed with exit code 1",
        );
        let hint = failure(&sqlite).unwrap();
        assert!(hint.contains("could not find sqlite3.h"), "{hint}");
        assert!(hint.contains("Aptfile") && hint.contains("libsqlite3-dev"), "{hint}");
        let gdal =
            lines("      gdal_config_error: [Errno 2] No such file or directory: 'gdal-config'");
        assert!(failure(&gdal).unwrap().contains("gdal-config"));
        assert_eq!(failure(&lines("ERROR: No matching distribution found for x")), None);
        let stale = lines("Pipfile.lock is out-of-date. Run $ pipenv lock to update.");
        assert!(failure(&stale).unwrap().contains("run `pipenv lock`"));
        let celery = lines("Please use pip<24.1 if you need to use this version.");
        assert!(failure(&celery).unwrap().contains("Celery older than 5.2.1"));
    }

    #[test]
    fn hooks_are_named_when_they_fail() {
        let plan = plan_of(
            &[("requirements.txt", ""), ("bin/post_compile", "exit 1")],
            &BaseImages::local(),
        )
        .unwrap();
        let (step, _) = plan.step_words.iter().next().unwrap();
        let hint = Failure {
            plan: &plan,
            ca_file: None,
            ca_injected: false,
            step: &format!("RUN {step}"),
            output: &lines("Some post_compile error!"),
            message: "returned a non-zero code: 1",
        }
        .hint()
        .unwrap();
        assert!(hint.starts_with("bin/post_compile exited with an error"), "{hint}");
    }
}
