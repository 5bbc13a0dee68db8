//! A Procfile and nothing paas recognises: the files on a plain OS image, started by the
//! Procfile's commands.

use super::{App, Provider};
use crate::{BaseImages, BuildError, BuildPlan, ImageRole, Kind};

pub(crate) struct Shell;

impl Provider for Shell {
    fn detect(&self, app: &App) -> bool {
        app.is_file("Procfile")
    }

    fn plan(&self, _app: &App, images: &BaseImages) -> Result<BuildPlan, BuildError> {
        Ok(BuildPlan::detected(Kind::Shell, images.choose(ImageRole::Stack, None).image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::plan_of;

    #[test]
    fn procfile_only() {
        let p =
            plan_of(&[("Procfile", "web: ./serve.sh\n"), ("serve.sh", "")], &BaseImages::local())
                .unwrap();
        assert_eq!(p.kind, Kind::Shell);
        assert_eq!(p.base_image.as_deref(), Some("paas/stack:bookworm"));
        assert_eq!(p.process_types["web"], "./serve.sh");
    }
}
