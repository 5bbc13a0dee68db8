//! Apps' scheduled jobs and their last runs.

use super::*;

const JOB_COLUMNS: &str = "j.id, a.name AS app, j.schedule, j.command, j.created_by, \
                           j.created_at, j.last_minute, j.running, j.last_started_at, \
                           j.last_finished_at, j.last_exit_code, j.last_error, j.runs, j.skipped";

impl Store {
    /// One app's jobs, or with `None` every app's.
    pub async fn cron_jobs(&self, app: Option<&App>) -> Result<Vec<CronJob>> {
        let query = format!(
            "SELECT {JOB_COLUMNS} FROM cron_jobs j JOIN apps a ON a.id = j.app_id
             WHERE $1 = 0 OR j.app_id = $1 ORDER BY a.name, j.id"
        );
        Ok(sqlx::query_as(&query).bind(app.map_or(0, |a| a.id)).fetch_all(&self.pool).await?)
    }

    pub async fn add_cron_job(
        &self,
        app: &App,
        schedule: &str,
        command: &str,
        created_by: &str,
    ) -> Result<CronJob> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO cron_jobs (app_id, schedule, command, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(app.id)
        .bind(schedule)
        .bind(command)
        .bind(created_by)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        let jobs = self.cron_jobs(Some(app)).await?;
        jobs.into_iter()
            .find(|j| j.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("cron job {id}")))
    }

    /// Removes one of the app's jobs; false if it has none of that id.
    pub async fn remove_cron_job(&self, app: &App, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM cron_jobs WHERE app_id = $1 AND id = $2")
            .bind(app.id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks the run of `minute` as started, unless a run is under way (counted as skipped)
    /// or this minute's already started (a restart within it): true when it is the caller's
    /// to run. One statement each, so two servers on one database never both run it.
    pub async fn claim_cron_run(&self, job: &CronJob, minute: &str) -> Result<bool> {
        let claimed = sqlx::query(
            "UPDATE cron_jobs SET running = 1, last_minute = $2, last_started_at = $3,
                                  last_finished_at = NULL, last_exit_code = NULL,
                                  last_error = NULL, runs = runs + 1
             WHERE id = $1 AND running = 0 AND (last_minute IS NULL OR last_minute <> $2)",
        )
        .bind(job.id)
        .bind(minute)
        .bind(now())
        .execute(&self.pool)
        .await?;
        if claimed.rows_affected() > 0 {
            return Ok(true);
        }
        sqlx::query(
            "UPDATE cron_jobs SET skipped = skipped + 1, last_minute = $2
             WHERE id = $1 AND running = 1 AND (last_minute IS NULL OR last_minute <> $2)",
        )
        .bind(job.id)
        .bind(minute)
        .execute(&self.pool)
        .await?;
        Ok(false)
    }

    /// Records how a run ended: its exit code, or why it could not run or finish.
    pub async fn finish_cron_run(
        &self,
        job: &CronJob,
        exit_code: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE cron_jobs SET running = 0, last_finished_at = $2, last_exit_code = $3,
                                  last_error = $4
             WHERE id = $1",
        )
        .bind(job.id)
        .bind(now())
        .bind(exit_code)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs under way when paas stopped did not finish: says so; returns how many.
    pub async fn fail_running_cron_jobs(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE cron_jobs SET running = 0, last_finished_at = $1,
                                  last_error = 'paas stopped while it ran'
             WHERE running = 1",
        )
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
