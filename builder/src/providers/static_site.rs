//! Static sites: `index.html` in the root, or a `public/` folder, served by busybox httpd.

use super::{App, Provider};
use crate::{BaseImages, BuildError, BuildPlan, ImageRole, Kind};

pub(crate) struct Static;

impl Provider for Static {
    fn detect(&self, app: &App) -> bool {
        app.is_file("index.html") || app.is_dir("public")
    }

    fn plan(&self, app: &App, images: &BaseImages) -> Result<BuildPlan, BuildError> {
        let image = images.choose(ImageRole::Static, None);
        let mut plan = BuildPlan::detected(Kind::Static, image.image);
        let root = if app.is_file("index.html") { "/app" } else { "/app/public" };
        // busybox is in both the official busybox image and paas/static; -f stays in the
        // foreground, -v logs each request.
        plan.infer("web", format!("busybox httpd -f -v -p ${{PORT:-8080}} -h {root}"));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::plan_of;

    #[test]
    fn serves_the_root_or_public() {
        let p = plan_of(&[("index.html", "<h1>hi</h1>")], &BaseImages::local()).unwrap();
        assert_eq!(p.kind, Kind::Static);
        assert!(p.process_types["web"].ends_with("-h /app"));
        assert_eq!(p.install, None);

        let p = plan_of(&[("public/index.html", "")], &BaseImages::official()).unwrap();
        assert!(p.process_types["web"].ends_with("-h /app/public"));
        assert_eq!(p.base_image.as_deref(), Some("busybox:stable"));
    }
}
