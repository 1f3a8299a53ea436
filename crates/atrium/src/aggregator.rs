use async_trait::async_trait;
use chrono::NaiveDate;

use crate::AtriumError;
use crate::wire::{
    Account, Challenge, ChallengeAnswer, Credential, Institution, MAX_RECORDS_PER_PAGE, Member, MemberConnectionStatus,
    MemberUpdate, NewMember, NewUser, Pagination, Transaction, User,
};

pub type Result<T, E = AtriumError> = std::result::Result<T, E>;

/// Which page of a list to read; pages count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub records_per_page: u32,
}

impl PageRequest {
    pub const fn new(page: u32, records_per_page: u32) -> Self {
        Self { page, records_per_page }
    }

    /// The first page at the largest size the server allows.
    pub const fn largest() -> Self {
        Self::new(1, MAX_RECORDS_PER_PAGE)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::new(1, crate::wire::DEFAULT_RECORDS_PER_PAGE)
    }
}

/// One page of a list and where it sits among the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub pagination: Pagination,
}

impl<T> Page<T> {
    /// Whether a page follows this one.
    pub fn has_next(&self) -> bool {
        self.pagination.current_page < self.pagination.total_pages && !self.items.is_empty()
    }
}

/// Reads pages of the largest size until the last one. The page number is
/// ours, not the server's, so a server that repeats `current_page` cannot
/// keep us looping; an empty page also ends the walk.
pub async fn collect_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut all = Vec::new();
    let mut request = PageRequest::largest();
    loop {
        let page = fetch(request).await?;
        let last = page.items.is_empty() || request.page >= page.pagination.total_pages;
        all.extend(page.items);
        if last {
            return Ok(all);
        }
        request.page += 1;
    }
}

/// The `from_date`/`to_date` window of a transaction list; `None` leaves the
/// server's default (90 days ago … 5 days ahead).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

impl DateRange {
    pub const fn between(from: NaiveDate, to: NaiveDate) -> Self {
        Self { from: Some(from), to: Some(to) }
    }
}

/// Bank-account aggregation as Donkies uses it (PROVIDERS.md Part C).
///
/// [`crate::AtriumClient`] implements it over HTTP; services hold an
/// `Arc<dyn Aggregator>`. The `all_*` methods read every page of a list.
#[async_trait]
pub trait Aggregator: Send + Sync {
    async fn create_user(&self, user: &NewUser) -> Result<User>;
    async fn read_user(&self, user_guid: &str) -> Result<User>;
    async fn update_user(&self, user_guid: &str, user: &NewUser) -> Result<User>;
    async fn delete_user(&self, user_guid: &str) -> Result<()>;
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>>;

    /// Institutions whose name contains `name` (all when `None`).
    async fn list_institutions(&self, name: Option<&str>, page: PageRequest) -> Result<Page<Institution>>;
    async fn read_institution(&self, code: &str) -> Result<Institution>;
    async fn list_institution_credentials(&self, code: &str) -> Result<Vec<Credential>>;

    /// Creates a member and starts its first aggregation.
    async fn create_member(&self, user_guid: &str, member: &NewMember) -> Result<Member>;
    async fn read_member(&self, user_guid: &str, member_guid: &str) -> Result<Member>;
    /// Where the aggregation stands, with challenges while CHALLENGED.
    async fn read_member_status(&self, user_guid: &str, member_guid: &str) -> Result<MemberConnectionStatus>;
    /// Updates a member; new credentials start a new aggregation.
    async fn update_member(&self, user_guid: &str, member_guid: &str, update: &MemberUpdate) -> Result<Member>;
    /// Starts an aggregation with the stored credentials (202 if one runs: the
    /// member is returned either way).
    async fn aggregate_member(&self, user_guid: &str, member_guid: &str) -> Result<Member>;
    /// Answers the member's MFA challenges.
    async fn resume_member(&self, user_guid: &str, member_guid: &str, answers: &[ChallengeAnswer]) -> Result<Member>;
    /// The outstanding challenges; empty when the member is not challenged.
    async fn list_member_challenges(&self, user_guid: &str, member_guid: &str) -> Result<Vec<Challenge>>;
    async fn delete_member(&self, user_guid: &str, member_guid: &str) -> Result<()>;
    async fn list_members(&self, user_guid: &str, page: PageRequest) -> Result<Page<Member>>;

    async fn list_accounts(&self, user_guid: &str, page: PageRequest) -> Result<Page<Account>>;
    async fn list_member_accounts(
        &self,
        user_guid: &str,
        member_guid: &str,
        page: PageRequest,
    ) -> Result<Page<Account>>;
    async fn list_transactions(
        &self,
        user_guid: &str,
        range: DateRange,
        page: PageRequest,
    ) -> Result<Page<Transaction>>;
    async fn list_member_transactions(
        &self,
        user_guid: &str,
        member_guid: &str,
        range: DateRange,
        page: PageRequest,
    ) -> Result<Page<Transaction>>;

    async fn all_institutions(&self, name: Option<&str>) -> Result<Vec<Institution>> {
        collect_pages(|page| self.list_institutions(name, page)).await
    }

    async fn all_members(&self, user_guid: &str) -> Result<Vec<Member>> {
        collect_pages(|page| self.list_members(user_guid, page)).await
    }

    async fn all_accounts(&self, user_guid: &str) -> Result<Vec<Account>> {
        collect_pages(|page| self.list_accounts(user_guid, page)).await
    }

    async fn all_member_accounts(&self, user_guid: &str, member_guid: &str) -> Result<Vec<Account>> {
        collect_pages(|page| self.list_member_accounts(user_guid, member_guid, page)).await
    }

    async fn all_transactions(&self, user_guid: &str, range: DateRange) -> Result<Vec<Transaction>> {
        collect_pages(|page| self.list_transactions(user_guid, range, page)).await
    }

    async fn all_member_transactions(
        &self,
        user_guid: &str,
        member_guid: &str,
        range: DateRange,
    ) -> Result<Vec<Transaction>> {
        collect_pages(|page| self.list_member_transactions(user_guid, member_guid, range, page)).await
    }
}
