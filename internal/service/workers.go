package service

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/store"
)

func (s *Server) worker(w http.ResponseWriter, r *http.Request) (*claims, bool) {
	c, err := s.caller(r)
	if err != nil || !s.allowed(c, "", api.ScopeWorker) {
		s.deny(w, c, err, "run builds (it needs the worker scope)")
		return nil, false
	}
	return c, true
}

// workerName is the lease holder: the token's name and the name the
// worker gives, so two workers sharing a token hold separate leases.
func workerName(c *claims, name string) string {
	if name == "" {
		return c.Subject
	}
	return c.Subject + "/" + name
}

func (s *Server) lease(w http.ResponseWriter, r *http.Request) {
	c, ok := s.worker(w, r)
	if !ok {
		return
	}
	var req api.LeaseRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "UNSUPPORTED", "lease request: "+err.Error(), nil)
		return
	}
	if req.Wait > 60 {
		req.Wait = 60
	}
	name := workerName(c, req.Name)
	holdWrite(w, r, time.Duration(req.Wait)*time.Second)
	deadline := time.After(time.Duration(req.Wait) * time.Second)
	for {
		wake := s.events.wait("")
		b, err := s.store.Lease(r.Context(), name, req.Platforms, req.Secrets, s.cfg.Lease)
		if err == nil {
			s.events.notify(b.ID)
			// Unanswered, the lease runs out and the build is queued
			// again.
			catalog, err := s.store.BuildCatalog(r.Context(), b.ID)
			if err != nil {
				writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
				return
			}
			lim := s.recipeLimits()
			writeJSON(w, http.StatusOK, api.Lease{Build: s.view(b), Registry: s.host(), Username: "pei-job",
				Password: s.jobSecret(b), LeaseSeconds: int(s.cfg.Lease / time.Second),
				RecipeMaxBytes: lim.MaxBytes, RecipeMaxFiles: lim.MaxFiles, Catalog: catalog})
			return
		}
		if !errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
			return
		}
		select {
		case <-wake:
		case <-deadline:
			w.WriteHeader(http.StatusNoContent)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// jobSecret is a password for one attempt of one build, checked by the
// token endpoint: an HMAC of the build id and attempt under a server key.
func (s *Server) jobSecret(b store.Build) string {
	msg := b.ID + "." + strconv.Itoa(b.Attempts)
	m := hmac.New(sha256.New, s.jobKey)
	m.Write([]byte(msg))
	return "job." + msg + "." + hex.EncodeToString(m.Sum(nil))
}

// jobBuild returns the running build a job secret belongs to.
func (s *Server) jobBuild(r *http.Request, secret string) (store.Build, bool) {
	parts := strings.Split(secret, ".")
	if len(parts) != 4 || parts[0] != "job" {
		return store.Build{}, false
	}
	b, err := s.store.Build(r.Context(), parts[1])
	if err != nil || b.State != api.Running || strconv.Itoa(b.Attempts) != parts[2] {
		return store.Build{}, false
	}
	return b, hmac.Equal([]byte(s.jobSecret(b)), []byte(secret))
}

// heldBuild loads a build the calling worker holds the lease of.
func (s *Server) heldBuild(w http.ResponseWriter, r *http.Request) (store.Build, string, bool) {
	c, ok := s.worker(w, r)
	if !ok {
		return store.Build{}, "", false
	}
	name := workerName(c, r.URL.Query().Get("worker"))
	b, err := s.store.Build(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, "BUILD_UNKNOWN", "no build "+r.PathValue("id"), nil)
		return store.Build{}, "", false
	}
	if b.Worker != name || b.State != api.Running {
		writeError(w, http.StatusConflict, "LEASE_LOST", fmt.Sprintf("build %s is %s and not leased to %s", b.ID, b.State, name), nil)
		return store.Build{}, "", false
	}
	return b, name, true
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	b, name, ok := s.heldBuild(w, r)
	if !ok {
		return
	}
	b, err := s.store.Heartbeat(r.Context(), b.ID, name, s.cfg.Lease)
	if err != nil {
		writeError(w, http.StatusConflict, "LEASE_LOST", err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, api.Heartbeat{Cancel: b.Cancel, State: b.State})
}

func (s *Server) appendLog(w http.ResponseWriter, r *http.Request) {
	b, _, ok := s.heldBuild(w, r)
	if !ok {
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "UNSUPPORTED", err.Error(), nil)
		return
	}
	if len(data) > 0 {
		seq, err := s.store.AppendLog(r.Context(), b.ID, strings.ToValidUTF8(string(data), "\uFFFD"), s.cfg.Limits.MaxLogBytes)
		if errors.Is(err, store.ErrLogFull) {
			// The build goes on; its log is full.
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
			return
		}
		w.Header().Set("Pei-Log-Seq", strconv.FormatInt(seq, 10))
		s.events.notify(b.ID)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) finish(w http.ResponseWriter, r *http.Request) {
	b, name, ok := s.heldBuild(w, r)
	if !ok {
		return
	}
	var f api.Finish
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&f); err != nil {
		writeError(w, http.StatusBadRequest, "UNSUPPORTED", "finish: "+err.Error(), nil)
		return
	}
	if f.State == api.Succeeded {
		if _, err := digest.Parse(f.Digest); err != nil {
			writeError(w, http.StatusBadRequest, "DIGEST_INVALID", "a succeeded build reports its image digest: "+err.Error(), nil)
			return
		}
	}
	if f.State == api.Queued {
		b, err := s.store.Release(r.Context(), b.ID, name, fmt.Sprintf("worker %s stopped; queued again", name))
		if err != nil {
			writeError(w, http.StatusConflict, "LEASE_LOST", err.Error(), nil)
			return
		}
		s.events.notify("")
		s.events.notify(b.ID)
		writeJSON(w, http.StatusOK, s.view(b))
		return
	}
	b, err := s.store.Finish(r.Context(), b.ID, name, f)
	if err != nil {
		writeError(w, http.StatusConflict, "LEASE_LOST", err.Error(), nil)
		return
	}
	s.ended(b)
	s.events.notify(b.ID)
	writeJSON(w, http.StatusOK, s.view(b))
}

// recipe streams a leased build's recipe: an upload from the data
// directory, or a recipe artifact's layer from the registry.
func (s *Server) recipe(w http.ResponseWriter, r *http.Request) {
	b, _, ok := s.heldBuild(w, r)
	if !ok {
		return
	}
	d, err := digest.Parse(b.Recipe)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "DIGEST_INVALID", err.Error(), nil)
		return
	}
	var rc io.ReadCloser
	if b.Subject != "" {
		rc, err = s.openBlob(r.Context(), b.Repo, d)
	} else {
		rc, err = os.Open(filepath.Join(s.cfg.DataDir, "recipes", "sha256", d.Encoded()))
	}
	if err != nil {
		writeError(w, http.StatusNotFound, "BLOB_UNKNOWN", fmt.Sprintf("recipe %s of build %s: %v", d, b.ID, err), nil)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/vnd.pei.recipe.v1.tar+gzip")
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", strconv.FormatInt(b.RecipeSize, 10))
	io.Copy(w, rc)
}

// ended runs when a build reaches an end state: its webhook call (already
// pending in the database) goes out now rather than at the next tick.
func (s *Server) ended(b store.Build) {
	if b.Webhook != "" {
		s.hooks.kick()
	}
}
