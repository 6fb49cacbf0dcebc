package api

import "time"

// State is where a build is in its life.
type State string

// Build states: queued → running → succeeded | failed | canceled, and
// running → queued again when its worker is lost or gives it back.
const (
	Queued    State = "queued"
	Running   State = "running"
	Succeeded State = "succeeded"
	Failed    State = "failed"
	Canceled  State = "canceled"
	// Lost is no state a build has on the server: it is what a worker
	// says in its own log of a build whose lease it lost (the server gave
	// the build to another worker, or it ended). Nothing is reported.
	Lost State = "lost"
)

// Done reports whether a build in state s has ended.
func (s State) Done() bool { return s == Succeeded || s == Failed || s == Canceled }

// Build kinds: what a recipe holds.
const (
	KindPei        = "pei"        // a pei project: user_config.yml at the top
	KindDockerfile = "dockerfile" // a Dockerfile and its context
)

// BuildView is a build as the API shows it.
type BuildView struct {
	ID         string    `json:"id"`
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	Platform   string    `json:"platform"`
	Kind       string    `json:"kind"`
	Stage      string    `json:"stage,omitempty"`
	State      State     `json:"state"`
	Created    time.Time `json:"created"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	Worker     string    `json:"worker,omitempty"`
	Attempts   int       `json:"attempts"`
	Recipe     string    `json:"recipe"`
	RecipeSize int64     `json:"recipe_size"`
	Subject    string    `json:"subject,omitempty"`
	Secrets    []string  `json:"secrets,omitempty"`
	Timeout    string    `json:"timeout"`
	Webhook    bool      `json:"webhook"`
	Submitter  string    `json:"submitter,omitempty"`
	Digest     string    `json:"digest,omitempty"`
	Image      string    `json:"image,omitempty"`
	Error      string    `json:"error,omitempty"`
	Cancel     bool      `json:"cancel_requested,omitempty"`
	Links      struct {
		Self string `json:"self"`
		Logs string `json:"logs"`
	} `json:"links"`
}

// BuildList is the answer to a build listing, newest first.
type BuildList struct {
	Builds []BuildView `json:"builds"`
}

// BuildsPath is where repo's builds are listed and submitted.
func BuildsPath(repo string) string { return "/v2/" + repo + "/_pei/builds" }

// BuildPath is a build's status (and cancel) endpoint.
func BuildPath(repo, id string) string { return BuildsPath(repo) + "/" + id }

// LogsPath is a build's log endpoint.
func LogsPath(repo, id string) string { return BuildPath(repo, id) + "/logs" }

// LeaseRequest is what a worker asks POST /v2/_pei/workers/lease for.
type LeaseRequest struct {
	Name      string   `json:"name"`
	Platforms []string `json:"platforms"`
	Secrets   []string `json:"secrets"` // ids of the secrets the worker holds
	Wait      int      `json:"wait_seconds"`
}

// Lease is a leased build: what to build and the registry credentials to
// build it with.
type Lease struct {
	Build BuildView `json:"build"`
	// Registry is host[:port] of this registry.
	Registry string `json:"registry"`
	// Username and Password log in to the registry for this build only:
	// pull in the submitter's namespace, push to the build's repository.
	Username string `json:"username"`
	Password string `json:"password"`
	// LeaseSeconds is how long the lease lasts without a heartbeat.
	LeaseSeconds int `json:"lease_seconds"`
	// RecipeMaxBytes and RecipeMaxFiles are the limits the server checked
	// the recipe against, which the worker unpacks it with.
	RecipeMaxBytes int64 `json:"recipe_max_bytes,omitempty"`
	RecipeMaxFiles int   `json:"recipe_max_files,omitempty"`
	// Catalog is the items of pei serve's catalog the build takes, pinned
	// by digest when it was queued.
	Catalog []CatalogItem `json:"catalog,omitempty"`
}

// Heartbeat is the answer to a heartbeat.
type Heartbeat struct {
	Cancel bool  `json:"cancel"`
	State  State `json:"state"`
}

// Finish is what a worker reports at the end of a build.
type Finish struct {
	// State is succeeded, failed or canceled; queued gives the build
	// back (the worker is shutting down).
	State  State  `json:"state"`
	Digest string `json:"digest,omitempty"`
	Error  string `json:"error,omitempty"`
}

// WebhookEvent is the body of a webhook call: Event is "build." and the
// build's end state. (Build comes first: the body is what it was when it
// was a map, whose keys encode sorted.)
type WebhookEvent struct {
	Build BuildView `json:"build"`
	Event string    `json:"event"`
}

// Errors is the body of every error answer, as in the OCI distribution
// spec: the first entry says what went wrong.
type Errors struct {
	Errors []Error `json:"errors"`
}

// Error is one entry of an error answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}
