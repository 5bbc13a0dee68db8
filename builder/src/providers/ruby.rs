//! Ruby: Bundler, with gems in a layer keyed on Gemfile/Gemfile.lock; Rails and Rack apps
//! recognised.

use super::{App, Provider, leading_version, version_file};
use crate::config::Requested;
use crate::{BaseImages, BuildError, BuildPlan, ImageRole, Install, Kind, Stage};

pub(crate) struct Ruby;

/// Where Bundler installs the gems, outside the app's folder.
const BUNDLE_PATH: &str = "/opt/bundle";

impl Provider for Ruby {
    fn detect(&self, app: &App) -> bool {
        app.is_file("Gemfile")
    }

    fn plan(&self, app: &App, images: &BaseImages) -> Result<BuildPlan, BuildError> {
        let gemfile = app.read("Gemfile")?.unwrap_or_default();
        let requested = match version_file(app, ".ruby-version", "ruby-", 2)? {
            Some(found) => Some(found),
            None => version_file(app, ".ruby-version", "", 2)?.or_else(|| {
                gemfile.lines().find_map(|line| {
                    let rest = line.trim().strip_prefix("ruby ")?;
                    let version = leading_version(rest.trim_matches(['"', '\'', ' ']), 2)?;
                    Some(Requested { version, source: "Gemfile".into() })
                })
            }),
        };
        let image = images.choose(ImageRole::Ruby, requested.as_ref());
        let mut plan = BuildPlan::detected(Kind::Ruby, image.image);
        plan.runtime = image.note;
        // Bundler reads these at run time too, so `bundle exec` finds the installed gems.
        plan.env.insert("BUNDLE_PATH".into(), BUNDLE_PATH.into());
        plan.env.insert("BUNDLE_WITHOUT".into(), "development:test".into());
        if app.is_file("Gemfile.lock") {
            plan.env.insert("BUNDLE_DEPLOYMENT".into(), "1".into());
        } else {
            plan.notes.push(
                "no Gemfile.lock: gem versions are not pinned; commit the lock file bundle \
                 writes"
                    .into(),
            );
        }
        plan.install = Some(Install {
            command: "bundle install".into(),
            files: app.existing(&["Gemfile", "Gemfile.lock"])?,
            whole_tree: false,
        });
        // Installed and built in a stage on the same image; the gems come over from it.
        let image = plan.base_image.clone().unwrap_or_default();
        plan.build_stage = Some(Stage { image, keep: vec![BUNDLE_PATH.into()] });

        if app.is_file("config/application.rb") && app.is_file("bin/rails") {
            plan.framework = Some("Rails".into());
            plan.env.insert("RAILS_ENV".into(), "production".into());
            plan.env.insert("RAILS_LOG_TO_STDOUT".into(), "1".into());
            plan.env.insert("RAILS_SERVE_STATIC_FILES".into(), "1".into());
            if app.is_dir("app/assets") || app.is_dir("app/javascript") {
                plan.build = Some("SECRET_KEY_BASE_DUMMY=1 bin/rails assets:precompile".into());
            }
            plan.infer("web", "bin/rails server -b 0.0.0.0 -p ${PORT:-3000}");
        } else if app.is_file("config.ru") {
            plan.framework = Some("Rack".into());
            plan.infer("web", "bundle exec rackup config.ru -o 0.0.0.0 -p ${PORT:-9292}");
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::plan_of;

    #[test]
    fn rails_and_rack() {
        let p = plan_of(
            &[
                ("Gemfile", "source 'https://rubygems.org'\nruby '3.2.2'\ngem 'rails'\n"),
                ("Gemfile.lock", ""),
                ("config/application.rb", ""),
                ("bin/rails", ""),
                ("app/assets/x.css", ""),
            ],
            &BaseImages::official(),
        )
        .unwrap();
        assert_eq!(p.framework.as_deref(), Some("Rails"));
        assert_eq!(p.base_image.as_deref(), Some("ruby:3.2-slim"));
        assert_eq!(p.install.unwrap().files, ["Gemfile", "Gemfile.lock"]);
        assert!(p.build.unwrap().contains("assets:precompile"));
        assert!(p.process_types["web"].starts_with("bin/rails server"));

        let p = plan_of(
            &[("Gemfile", ""), ("config.ru", ""), (".ruby-version", "ruby-3.1.4\n")],
            &BaseImages::official(),
        )
        .unwrap();
        assert!(p.process_types["web"].contains("rackup"));
        assert_eq!(p.base_image.as_deref(), Some("ruby:3.1-slim"));
    }
}
