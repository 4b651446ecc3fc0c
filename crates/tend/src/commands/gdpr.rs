//! `tend gdpr check|export|erase`: the subject graph from `[gdpr]` in tend.toml. `check`
//! fails while a table the subject reaches has no policy an erasure can carry out (run it
//! in CI beside `schema verify`); `export` writes everything of one subject; `erase`
//! applies the policies in one audited transaction, after showing what it will do.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tend_core::gdpr::{self, GdprError, PolicyAction, SubjectRef};

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::context::{Context, block_on};
use crate::output::count;

#[derive(Debug, Subcommand)]
pub enum GdprCommand {
    /// Fail (exit 1) while a table the subject reaches has no policy an erasure can carry out.
    Check(CheckArgs),
    /// Write everything of one subject: a JSON file per table and a manifest, in a new directory.
    Export(ExportArgs),
    /// Apply the policies to one subject's rows in one transaction, audited (asks first).
    Erase(EraseArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also print a `[gdpr.tables]` policy for each table without one, to review and paste
    /// into tend.toml: delete what the subject owns, unlink mentions that can be cleared.
    #[arg(long)]
    pub suggest: bool,
}

/// Whose data.
#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// The subject: TABLE:KEY (users:42), or a key of the `[gdpr] subject` table.
    #[arg(value_name = "SUBJECT", required_unless_present_any = ["subject", "email"])]
    pub positional: Option<String>,
    /// The same as SUBJECT.
    #[arg(long, value_name = "TABLE:KEY", conflicts_with_all = ["positional", "email"])]
    pub subject: Option<String>,
    /// Find the subject by email (`[gdpr] email_column`, case-insensitive).
    #[arg(long, conflicts_with = "positional")]
    pub email: Option<String>,
}

impl SubjectArgs {
    fn subject(&self) -> Result<SubjectRef, CommandError> {
        match (&self.positional, &self.subject, &self.email) {
            (_, _, Some(email)) => Ok(SubjectRef::Email(email.clone())),
            (Some(text), _, _) | (None, Some(text), _) => {
                SubjectRef::parse_key(text).map_err(gdpr_error)
            }
            (None, None, None) => Err(CommandError::new(
                ErrorKind::Config,
                "give the subject: TABLE:KEY, or --email",
            )),
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// The directory to write (new, or empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Encrypt every file with the backup keys (BACKUP_ENCRYPTION_KEY or
    /// BACKUP_AGE_RECIPIENTS): `.age` files the age CLI opens.
    #[arg(long)]
    pub encrypt: bool,
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// Show what the erasure does, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(command: GdprCommand, ctx: &Context) -> Result<i32, CommandError> {
    match command {
        GdprCommand::Check(args) => check(args, ctx),
        GdprCommand::Export(args) => export(args, ctx),
        GdprCommand::Erase(args) => erase(args, ctx),
    }
}

fn action_name(action: PolicyAction) -> &'static str {
    match action {
        PolicyAction::Delete => "delete",
        PolicyAction::Anonymize => "anonymize",
        PolicyAction::Unlink => "unlink",
        PolicyAction::Retain => "retain",
    }
}

fn check(args: CheckArgs, ctx: &Context) -> Result<i32, CommandError> {
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    let report = block_on(gdpr::check(&session, &ctx.settings.gdpr)).map_err(gdpr_error)?;
    ctx.out.json_value(&report);
    ctx.out.line(format!(
        "Subject: {} (by {}); it reaches {}:",
        report.subject,
        report.key,
        count(report.tables.len(), "table", "tables")
    ));
    let width = report
        .tables
        .iter()
        .map(|t| t.table.len())
        .max()
        .unwrap_or(0);
    for table in &report.tables {
        let how = if table.owned {
            "owned".to_string()
        } else {
            format!("mentions it: {}", table.mentions.join(", "))
        };
        let policy = match (table.action, &table.reason) {
            (Some(PolicyAction::Retain), Some(reason)) => format!("retain ({reason})"),
            (Some(action), _) => action_name(action).to_string(),
            (None, _) => "NO POLICY".to_string(),
        };
        ctx.out
            .line(format!("  {:<width$}  {:<10}  {how}", table.table, policy));
    }
    for stale in &report.stale {
        ctx.out.notice(format!(
            "[gdpr.tables] has a policy for {stale}, which the subject no longer reaches"
        ));
    }
    if args.suggest {
        let missing: Vec<_> = report
            .tables
            .iter()
            .filter(|t| t.suggested.is_some())
            .collect();
        if !missing.is_empty() {
            ctx.out.line("");
            ctx.out
                .line("# Suggested policies: review each before you paste them into tend.toml.");
            for table in missing {
                let action = table.suggested.expect("filtered on it");
                ctx.out.line(format!(
                    "[gdpr.tables.\"{}\"]\naction = \"{}\"{}",
                    table.table,
                    action_name(action),
                    if table.owned {
                        "  # owned by the subject"
                    } else if action == PolicyAction::Delete {
                        "  # mentions the subject in a NOT NULL column"
                    } else {
                        "  # mentions the subject"
                    }
                ));
            }
            ctx.out.line("");
        }
    }
    if report.problems.is_empty() {
        ctx.out
            .line("Every table the subject reaches has a policy an erasure can carry out.");
        return Ok(exit::OK);
    }
    ctx.out.line(format!(
        "{}:",
        count(report.problems.len(), "problem", "problems")
    ));
    for problem in &report.problems {
        ctx.out
            .line(format!("  {}: {}", problem.table, problem.message));
    }
    Ok(exit::FAILURE)
}

fn export(args: ExportArgs, ctx: &Context) -> Result<i32, CommandError> {
    let subject = args.subject.subject()?;
    let encryption = if args.encrypt {
        Some(ctx.settings.backup.keys.encryption().map_err(|e| {
            CommandError::new(ErrorKind::Config, format!("--encrypt: {e}")).with_hint(
                "set BACKUP_ENCRYPTION_KEY (a passphrase) or BACKUP_AGE_RECIPIENTS (age public keys)",
            )
        })?)
    } else {
        None
    };
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    let report = block_on(gdpr::export(
        &session,
        &ctx.settings.gdpr,
        &subject,
        &args.out,
        encryption.as_ref(),
    ))
    .map_err(gdpr_error)?;
    ctx.out.json_value(&report);
    if !report.subject_found {
        ctx.out.notice(format!(
            "No row of {} has {} = {}: the export holds what still mentions that key (after an erasure, the retained rows).",
            report.subject_table, report.key_column, report.key
        ));
    }
    let with_rows = report.tables.iter().filter(|t| t.file.is_some()).count();
    ctx.out.line(format!(
        "Exported {} of {} {} from {} to {} (the manifest lists them).",
        count(report.rows as usize, "row", "rows"),
        report.subject_table,
        report.key,
        count(with_rows, "table", "tables"),
        report.directory.display()
    ));
    for table in report.tables.iter().filter(|t| t.file.is_some()) {
        let kept = match (&table.action, &table.reason) {
            (Some(PolicyAction::Retain), Some(reason)) => format!("  (retained: {reason})"),
            _ => String::new(),
        };
        ctx.out.line(format!(
            "  {}: {} owned, {} mentioning{kept}",
            table.table, table.owned_rows, table.mentioning_rows
        ));
    }
    Ok(exit::OK)
}

fn erase(args: EraseArgs, ctx: &Context) -> Result<i32, CommandError> {
    let subject = args.subject.subject()?;
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    let plan =
        block_on(gdpr::plan_erase(&session, &ctx.settings.gdpr, &subject)).map_err(gdpr_error)?;
    let show = |steps: &[gdpr::EraseStep]| {
        for step in steps {
            let what = match (step.action, &step.through, &step.reason) {
                (PolicyAction::Retain, _, Some(reason)) => format!("retain ({reason})"),
                (PolicyAction::Unlink, Some(through), _) => format!("unlink {through}"),
                (action, _, _) => action_name(action).to_string(),
            };
            ctx.out
                .line(format!("  {:>8}  {}  {what}", step.rows, step.table));
        }
    };
    if !plan.subject_found {
        ctx.out.notice(format!(
            "No row of {} has that key: only rows that still mention it are erased.",
            plan.subject_table
        ));
    }
    if args.dry_run || plan.rows() == 0 {
        ctx.out.json_value(&plan);
        show(&plan.steps);
        if plan.rows() == 0 {
            ctx.out.line(format!(
                "Nothing to erase for {} {}: no row would change.",
                plan.subject_table, plan.key
            ));
        } else {
            ctx.out.line(format!(
                "Would change {} (--dry-run: nothing was changed).",
                count(plan.rows() as usize, "row", "rows")
            ));
        }
        return Ok(exit::OK);
    }
    show(&plan.steps);
    ctx.out.confirm(
        &format!(
            "Erase {} {}: change {} in one transaction?",
            plan.subject_table,
            plan.key,
            count(plan.rows() as usize, "row", "rows")
        ),
        ctx.yes,
    )?;
    let database = ctx.settings.database.handle(target.info.clone());
    let by = format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".to_string()),
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string())
    );
    let report =
        block_on(gdpr::erase(&database, &ctx.settings.gdpr, &plan, &by)).map_err(gdpr_error)?;
    ctx.out.json_value(&report);
    ctx.out.line(format!(
        "Erased {} {}: changed {}; audit record {} in tend.gdpr_erasures.",
        report.subject_table,
        plan.key,
        count(report.rows as usize, "row", "rows"),
        report.audit_id
    ));
    Ok(exit::OK)
}

fn gdpr_error(err: GdprError) -> CommandError {
    match err {
        GdprError::Database(e) => e.into(),
        GdprError::Connect(e) => e.into(),
        GdprError::Session(e) => e.into(),
        err @ (GdprError::NotConfigured
        | GdprError::NoSubjectTable
        | GdprError::UnknownTable { .. }
        | GdprError::UnknownColumn { .. }
        | GdprError::NoKey { .. }
        | GdprError::NoEmailColumn { .. }
        | GdprError::Coverage(_)) => CommandError::new(ErrorKind::Config, err.to_string()),
        err => CommandError::failure(err.to_string()),
    }
}
