//! Which tenant a record belongs to: the pure half of tenant isolation.

use ots_protocol::model::PrimaryKeyValue;
use ots_protocol::record::TunnelRecord;

use crate::config::{TenantMatch, TenantsConfig};

/// The configured rules over the tenant key column. Tenant `i < rules` is rule `i`; the last
/// tenant is the default one (rows no rule matches, or without a usable tenant value).
#[derive(Debug, Clone)]
pub struct TenantRules {
    key_column: String,
    matchers: Vec<TenantMatch>,
}

impl TenantRules {
    /// The rules of `config`, in order.
    pub fn new(config: &TenantsConfig) -> Self {
        Self {
            key_column: config.key_column.clone(),
            matchers: config.rules.iter().map(|r| r.matcher.clone()).collect(),
        }
    }

    /// How many tenants there are: one per rule, and the default one.
    pub fn tenants(&self) -> usize {
        self.matchers.len() + 1
    }

    /// The tenant of `record`: the first rule matching its tenant column, else the default.
    pub fn tenant_of(&self, record: &TunnelRecord) -> usize {
        let value = record
            .change
            .primary_key()
            .0
            .iter()
            .find(|c| c.name == self.key_column)
            .and_then(|c| match &c.value {
                PrimaryKeyValue::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
                PrimaryKeyValue::Integer(i) => Some(std::borrow::Cow::Owned(i.to_string())),
                _ => None,
            });
        let Some(value) = value else {
            return self.matchers.len();
        };
        self.matchers
            .iter()
            .position(|m| match m {
                TenantMatch::Exact(v) => *v == *value,
                TenantMatch::Prefix(p) => value.starts_with(p.as_str()),
            })
            .unwrap_or(self.matchers.len())
    }

    /// The records of each tenant present in `records`, in record order: `(tenant, indices)`,
    /// ordered by tenant.
    pub fn partition(&self, records: &[TunnelRecord]) -> Vec<(usize, Vec<usize>)> {
        let mut by_tenant: Vec<Vec<usize>> = vec![Vec::new(); self.tenants()];
        for (i, record) in records.iter().enumerate() {
            by_tenant[self.tenant_of(record)].push(i);
        }
        by_tenant
            .into_iter()
            .enumerate()
            .filter(|(_, indices)| !indices.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use ots_protocol::model::{PrimaryKey, PrimaryKeyColumn, RowChange};

    use super::*;
    use crate::config::TenantRule;

    fn record(tenant: PrimaryKeyValue) -> TunnelRecord {
        TunnelRecord {
            change: RowChange::Delete {
                primary_key: PrimaryKey(vec![
                    PrimaryKeyColumn {
                        name: "tenant".into(),
                        value: tenant,
                    },
                    PrimaryKeyColumn {
                        name: "id".into(),
                        value: PrimaryKeyValue::Integer(1),
                    },
                ]),
            },
            sequence_info: None,
        }
    }

    fn rule(name: &str, matcher: TenantMatch) -> TenantRule {
        TenantRule {
            name: name.into(),
            matcher,
            processors: None,
            destination: None,
        }
    }

    #[test]
    fn the_first_matching_rule_wins_and_the_rest_is_the_default_tenant() {
        let rules = TenantRules::new(&TenantsConfig {
            key_column: "tenant".into(),
            backlog_table: "b".into(),
            rules: vec![
                rule("acme", TenantMatch::Exact("acme".into())),
                rule("eu", TenantMatch::Prefix("eu-".into())),
                rule("seven", TenantMatch::Exact("7".into())),
                rule("all-eu", TenantMatch::Prefix("eu".into())),
            ],
        });
        let s = |v: &str| record(PrimaryKeyValue::String(v.into()));
        assert_eq!(rules.tenants(), 5);
        assert_eq!(rules.tenant_of(&s("acme")), 0);
        assert_eq!(rules.tenant_of(&s("acme2")), 4, "exact means exact");
        assert_eq!(rules.tenant_of(&s("eu-west")), 1, "the first match wins");
        assert_eq!(rules.tenant_of(&s("europa")), 3);
        assert_eq!(rules.tenant_of(&record(PrimaryKeyValue::Integer(7))), 2);
        assert_eq!(
            rules.tenant_of(&record(PrimaryKeyValue::Binary(vec![1]))),
            4
        );
        let batch = [s("eu-1"), s("x"), s("acme"), s("eu-2"), s("y")];
        assert_eq!(
            rules.partition(&batch),
            [(0, vec![2]), (1, vec![0, 3]), (4, vec![1, 4])]
        );
    }
}
