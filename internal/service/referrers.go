package service

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pei-dev/pei/internal/store"
)

// manifestFields are the parts of an image manifest or index the
// referrers API reads.
type manifestFields struct {
	MediaType    string               `json:"mediaType"`
	ArtifactType string               `json:"artifactType"`
	Config       *ocispecs.Descriptor `json:"config"`
	Subject      *ocispecs.Descriptor `json:"subject"`
	Annotations  map[string]string    `json:"annotations"`
}

// referrer is the referrers-index entry of a pushed manifest with a
// subject, or nil.
func referrer(repo string, body []byte, contentType string) *store.Referrer {
	var m manifestFields
	if json.Unmarshal(body, &m) != nil || m.Subject == nil || m.Subject.Digest == "" {
		return nil
	}
	mt := m.MediaType
	if mt == "" {
		mt = contentType
	}
	at := m.ArtifactType
	if at == "" && m.Config != nil {
		at = m.Config.MediaType
	}
	return &store.Referrer{Repo: repo, Subject: m.Subject.Digest.String(), Digest: digest.FromBytes(body).String(),
		MediaType: mt, ArtifactType: at, Size: int64(len(body)), Annotations: m.Annotations}
}

// authorizeRegistry checks a registry-style request to pei's own registry
// endpoints, answering with the Bearer challenge clients expect.
func (s *Server) authorizeRegistry(w http.ResponseWriter, r *http.Request, repo, action string) bool {
	c, err := s.caller(r)
	if err == nil && s.allowed(c, repo, action) {
		return true
	}
	if c != nil && err == nil {
		writeError(w, http.StatusForbidden, "DENIED", fmt.Sprintf("%s may not %s %s", c.Subject, action, repo), nil)
		return false
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service=%q,scope="repository:%s:%s"`, s.cfg.PublicURL+"/token", service, repo, action))
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", nil)
	return false
}

// referrers is GET /v2/<name>/referrers/<digest>: an image index of the
// manifests whose subject is digest, filtered by ?artifactType=.
func (s *Server) referrers(w http.ResponseWriter, r *http.Request, repo, dgst string) {
	if _, err := reference.WithName(repo); err != nil {
		writeError(w, http.StatusNotFound, "NAME_INVALID", "invalid repository name", nil)
		return
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error(), nil)
		return
	}
	if !s.authorizeRegistry(w, r, repo, "pull") {
		return
	}
	refs, err := s.store.Referrers(r.Context(), repo, d.String())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
		return
	}
	want := r.URL.Query().Get("artifactType")
	idx := ocispecs.Index{MediaType: ocispecs.MediaTypeImageIndex, Manifests: []ocispecs.Descriptor{}}
	idx.SchemaVersion = 2
	ms, _ := s.manifests(r, repo)
	for _, ref := range refs {
		if want != "" && ref.ArtifactType != want {
			continue
		}
		// A manifest deleted behind our back (garbage collection) is
		// left out.
		if ms != nil {
			if ok, err := ms.Exists(r.Context(), digest.Digest(ref.Digest)); err == nil && !ok {
				continue
			}
		}
		idx.Manifests = append(idx.Manifests, ocispecs.Descriptor{MediaType: ref.MediaType, Digest: digest.Digest(ref.Digest),
			Size: ref.Size, ArtifactType: ref.ArtifactType, Annotations: ref.Annotations})
	}
	if want != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	body, _ := json.Marshal(idx)
	w.Header().Set("Content-Type", ocispecs.MediaTypeImageIndex)
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// deleteManifest passes a manifest delete to the registry and forgets the
// manifest as a referrer.
func (s *Server) deleteManifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	buf := &bufferedWriter{header: http.Header{}}
	s.app.ServeHTTP(buf, r)
	if buf.status == http.StatusAccepted {
		if _, err := digest.Parse(ref); err == nil {
			s.store.DeleteReferrer(r.Context(), repo, ref)
		}
	}
	buf.flush(w)
}

func (b *bufferedWriter) flush(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	w.Write(b.body.Bytes())
}

func (s *Server) manifests(r *http.Request, repo string) (distribution.ManifestService, error) {
	named, err := reference.WithName(repo)
	if err != nil {
		return nil, err
	}
	rep, err := s.registry.Repository(r.Context(), named)
	if err != nil {
		return nil, err
	}
	return rep.Manifests(r.Context())
}
