//! The plan a diff returns: its steps, their hazards and changes, the rename hints and options it
//! takes, and how steps name their objects.

use super::*;

/// What a step may do to a live database, shown before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hazard {
    /// Deletes data: a dropped table or column, enum values taken away.
    DataLoss,
    /// Rewrites the whole table under an `ACCESS EXCLUSIVE` lock.
    TableRewrite,
    /// Holds a lock that blocks writes (or reads) for as long as a scan or build takes.
    LongLock,
    /// May fail on the data that is there (a `NOT NULL` column without a default, a cast).
    MayFail,
}

impl Hazard {
    pub fn describe(self) -> &'static str {
        match self {
            Hazard::DataLoss => "data loss",
            Hazard::TableRewrite => "table rewrite (ACCESS EXCLUSIVE lock while it runs)",
            Hazard::LongLock => "long lock (blocks writes while it scans or builds)",
            Hazard::MayFail => "may fail on existing rows",
        }
    }
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// How a step changes its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Create,
    Alter,
    Drop,
}

/// One statement of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// What it touches; its text is for people: `column public.users.email`.
    pub object: ObjectId,
    pub change: Change,
    /// One statement, without the final semicolon.
    pub sql: String,
    /// False for statements that cannot run in a transaction block
    /// (`CREATE INDEX CONCURRENTLY`, `ALTER TYPE ... ADD VALUE` before its use).
    pub transactional: bool,
    pub hazards: Vec<Hazard>,
    /// Done only because of another change (a view recreated over a retyped column):
    /// the object itself does not differ.
    pub derived: bool,
}

/// The ordered steps from one model to another, and what the user should know.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
    /// What differs, each object once with its old and new values ([`crate::drift`]).
    pub objects: Vec<ObjectDrift>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The objects that differ (not those only rebuilt because of another change), each
    /// once, with how it changes; [`Plan::objects`] has the old and new values.
    pub fn changed_objects(&self) -> Vec<(&ObjectId, Change)> {
        self.objects.iter().map(|o| (&o.object, o.change)).collect()
    }

    /// A script `psql -f` runs as it is: each step preceded by comments naming its object
    /// and hazards.
    pub fn to_sql(&self, with_comments: bool) -> String {
        let mut out = String::new();
        for warning in &self.warnings {
            out.push_str(&format!("-- warning: {warning}\n"));
        }
        if !self.warnings.is_empty() {
            out.push('\n');
        }
        for step in &self.steps {
            if with_comments && step.object != ObjectId::Session {
                let change = match step.change {
                    Change::Create => "create",
                    Change::Alter => "alter",
                    Change::Drop => "drop",
                };
                let mut line = format!("-- {}: {change}", step.object);
                if !step.transactional {
                    line.push_str(" (outside a transaction)");
                }
                out.push_str(&line);
                out.push('\n');
                for hazard in &step.hazards {
                    out.push_str(&format!("-- hazard: {hazard}\n"));
                }
            }
            out.push_str(&step.sql);
            out.push_str(";\n");
            if with_comments {
                out.push('\n');
            }
        }
        out
    }
}

/// A hint that an object was renamed, so the diff renames instead of dropping and adding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rename {
    Table {
        from: QualifiedName,
        to: QualifiedName,
    },
    Column {
        table: QualifiedName,
        from: String,
        to: String,
    },
}

impl Rename {
    /// `schema.table=new_table` (or `=schema.new_table`), or `schema.table.column=new_column`.
    pub fn parse(text: &str) -> Result<Rename, String> {
        let (left, right) = text.split_once('=').ok_or_else(|| {
            format!("rename hint {text:?} has no `=`: write OLD=NEW, e.g. public.users=people or public.users.name=full_name")
        })?;
        let old = split_dotted(left.trim());
        let new = split_dotted(right.trim());
        match (old.as_slice(), new.as_slice()) {
            ([schema, table, column], [to]) => Ok(Rename::Column {
                table: QualifiedName::new(schema.clone(), table.clone()),
                from: column.clone(),
                to: to.clone(),
            }),
            ([schema, table], [to]) => Ok(Rename::Table {
                from: QualifiedName::new(schema.clone(), table.clone()),
                to: QualifiedName::new(schema.clone(), to.clone()),
            }),
            ([schema, table], [to_schema, to]) => Ok(Rename::Table {
                from: QualifiedName::new(schema.clone(), table.clone()),
                to: QualifiedName::new(to_schema.clone(), to.clone()),
            }),
            _ => Err(format!(
                "rename hint {text:?} is not SCHEMA.TABLE=NEW_TABLE or SCHEMA.TABLE.COLUMN=NEW_COLUMN"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub renames: Vec<Rename>,
    /// Build indexes on existing tables `CONCURRENTLY` (outside a transaction).
    pub concurrently: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            renames: Vec::new(),
            concurrently: true,
        }
    }
}

pub(super) fn type_target(ty: &Type) -> String {
    match ty.kind {
        TypeKind::Domain { .. } => format!("DOMAIN {}", ty.name.sql()),
        _ => format!("TYPE {}", ty.name.sql()),
    }
}

pub(super) fn function_target(function: &Function) -> String {
    if function.procedure {
        format!("PROCEDURE {}", function.key.sql())
    } else {
        format!("FUNCTION {}", function.key.sql())
    }
}

/// The steps grouped by object, for a listing of drift.
pub fn group_by_object(plan: &Plan) -> HashMap<&ObjectId, Vec<&Step>> {
    let mut groups: HashMap<&ObjectId, Vec<&Step>> = HashMap::new();
    for step in &plan.steps {
        groups.entry(&step.object).or_default().push(step);
    }
    groups
}
