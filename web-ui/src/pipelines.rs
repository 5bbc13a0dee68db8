//! The pipeline pages: the list (and a new one), and a pipeline's stages with a promote
//! button per app that has a next stage and approve and reject buttons for the releases
//! that wait. Every action goes through the core, which checks access to each app.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use paas_server::core::{BuildLog, Error, Paas, ReleaseStatus, STAGES};
use serde::Deserialize;

use crate::apps::{Notice, done};
use crate::page::{self, Layout, render};
use crate::session::{CsrfForm, SignedIn};

#[derive(Template)]
#[template(path = "pipelines.html")]
struct PipelinesPage {
    layout: Layout,
    pipelines: Vec<String>,
    notice: Option<String>,
}

pub(crate) async fn list(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Query(notice): Query<Notice>,
) -> Response {
    match paas.pipelines().await {
        Ok(pipelines) => render(&PipelinesPage {
            layout: signed_in.layout("Pipelines"),
            pipelines: pipelines.into_iter().map(|p| p.name).collect(),
            notice: notice.into_inner(),
        }),
        Err(err) => page::error_page(Some(signed_in.layout("Pipelines")), &err),
    }
}

#[derive(Deserialize)]
pub(crate) struct NewPipeline {
    #[serde(default)]
    name: String,
}

pub(crate) async fn create(
    State(paas): State<Paas>,
    CsrfForm { signed_in, form }: CsrfForm<NewPipeline>,
) -> Response {
    match paas.create_pipeline(&signed_in.actor, form.name.trim()).await {
        Ok(pipeline) => done(
            &format!("/pipelines/{}", pipeline.name),
            &format!("Created pipeline {}", pipeline.name),
        ),
        Err(err) => page::error_page(Some(signed_in.layout("Pipelines")), &err),
    }
}

/// One app's row: what it runs, where a promotion from it goes, what waits.
struct StageRow {
    stage: String,
    app: String,
    release: String,
    commit: String,
    behind: String,
    promote_to: Option<&'static str>,
    waiting: Vec<(i64, String)>,
}

#[derive(Template)]
#[template(path = "pipeline.html")]
struct PipelinePage {
    layout: Layout,
    name: String,
    rows: Vec<StageRow>,
    stages: &'static [&'static str],
    notice: Option<String>,
}

pub(crate) async fn show(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Path(name): Path<String>,
    Query(notice): Query<Notice>,
) -> Response {
    let rows = async {
        let pipeline = paas.pipeline(&name).await?;
        let status = paas.pipeline_status(&signed_in.actor, &pipeline).await?;
        let mut rows = Vec::new();
        for staged in &status.apps {
            let next =
                STAGES.iter().position(|s| *s == staged.stage).and_then(|i| STAGES.get(i + 1));
            let promote_to =
                next.filter(|next| status.apps.iter().any(|a| a.stage == **next)).copied();
            let app = paas.app_for(&signed_in.actor, &staged.app).await?;
            let waiting = paas
                .releases(&app)
                .await?
                .into_iter()
                .filter(|r| r.status == ReleaseStatus::Waiting)
                .map(|r| (r.version, r.description))
                .collect();
            rows.push(StageRow {
                stage: staged.stage.clone(),
                app: staged.app.clone(),
                release: staged.runs(),
                commit: staged.short_commit(),
                behind: staged.behind_words(),
                promote_to,
                waiting,
            });
        }
        Ok::<_, Error>(rows)
    }
    .await;
    match rows {
        Ok(rows) => render(&PipelinePage {
            layout: signed_in.layout(format!("Pipeline {name}")),
            name,
            rows,
            stages: &STAGES,
            notice: notice.into_inner(),
        }),
        Err(err) => page::error_page(Some(signed_in.layout("Pipelines")), &err),
    }
}

#[derive(Deserialize)]
pub(crate) struct StageForm {
    #[serde(default)]
    app: String,
    #[serde(default)]
    stage: String,
}

pub(crate) async fn add_app(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<StageForm>,
) -> Response {
    let actor = &signed_in.actor;
    let added = async {
        let pipeline = paas.pipeline(&name).await?;
        let app = paas.app_for(actor, form.app.trim()).await?;
        paas.add_to_pipeline(actor, &pipeline, &app, &form.stage).await?;
        Ok::<_, Error>(format!("Added {} at stage {}", app.name, form.stage))
    }
    .await;
    back_to(&signed_in, &name, added)
}

#[derive(Deserialize)]
pub(crate) struct AppForm {
    #[serde(default)]
    app: String,
}

pub(crate) async fn promote(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<AppForm>,
) -> Response {
    let actor = &signed_in.actor;
    let promoted = async {
        let app = paas.app_for(actor, &form.app).await?;
        let made = paas.promote(actor, &app, &[], &BuildLog::new()).await?;
        let targets: Vec<String> =
            made.iter().map(|(app, r)| format!("{} v{}", app.name, r.version)).collect();
        Ok::<_, Error>(format!("Promoted {} to {}", app.name, targets.join(", ")))
    }
    .await;
    back_to(&signed_in, &name, promoted)
}

#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    #[serde(default)]
    app: String,
    #[serde(default)]
    version: String,
}

pub(crate) async fn approve(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<DecisionForm>,
) -> Response {
    let decided = decide(&paas, &signed_in, &form, true).await;
    back_to(&signed_in, &name, decided)
}

pub(crate) async fn reject(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<DecisionForm>,
) -> Response {
    let decided = decide(&paas, &signed_in, &form, false).await;
    back_to(&signed_in, &name, decided)
}

/// Approves or rejects the waiting release `form` names; the notice to show.
pub(crate) async fn decide(
    paas: &Paas,
    signed_in: &SignedIn,
    form: &DecisionForm,
    approve: bool,
) -> Result<String, Error> {
    let actor = &signed_in.actor;
    let app = paas.app_for(actor, &form.app).await?;
    let version = paas_server::core::validate::release_version(&form.version)?;
    if approve {
        let release = paas.approve_release(actor, &app, version, &BuildLog::new()).await?;
        Ok(format!("Approved v{version}: {} runs v{}", app.name, release.version))
    } else {
        paas.reject_release(actor, &app, version).await?;
        Ok(format!("Rejected v{version} of {}", app.name))
    }
}

impl DecisionForm {
    pub(crate) fn app(&self) -> &str {
        &self.app
    }
}

fn back_to(signed_in: &SignedIn, name: &str, outcome: Result<String, Error>) -> Response {
    match outcome {
        Ok(notice) => done(&format!("/pipelines/{name}"), &notice),
        Err(err) => page::error_page(Some(signed_in.layout(format!("Pipeline {name}"))), &err),
    }
}
