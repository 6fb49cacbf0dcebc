package service

import (
	"embed"
	"net/http"

	"github.com/distribution/reference"
)

//go:embed web
var webFS embed.FS

// ui serves the web page: repositories with their tags, builds, and a
// build's live log. It reads the same JSON endpoints as any client, with
// the token the user types in (kept in the browser's session storage).
func (s *Server) ui(w http.ResponseWriter, r *http.Request) {
	name := "web/index.html"
	ctype := "text/html; charset=utf-8"
	switch r.URL.Path {
	case "/", "/ui/":
	case "/ui/app.js":
		name, ctype = "web/app.js", "text/javascript; charset=utf-8"
	case "/ui/style.css":
		name, ctype = "web/style.css", "text/css; charset=utf-8"
	default:
		http.NotFound(w, r)
		return
	}
	data, err := webFS.ReadFile(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Write(data)
}

// RepositoryView is a repository and its tags.
type RepositoryView struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// repositories lists the repositories the caller may pull, with tags.
func (s *Server) repositories(w http.ResponseWriter, r *http.Request) {
	c, err := s.caller(r)
	if err != nil {
		s.deny(w, nil, err, "")
		return
	}
	names, err := s.visibleRepos(r, c)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
		return
	}
	out := []RepositoryView{}
	for _, n := range names {
		rv := RepositoryView{Name: n, Tags: []string{}}
		if named, err := reference.WithName(n); err == nil {
			if repo, err := s.registry.Repository(r.Context(), named); err == nil {
				if tags, err := repo.Tags(r.Context()).All(r.Context()); err == nil {
					rv.Tags = tags
				}
			}
		}
		out = append(out, rv)
	}
	writeJSON(w, http.StatusOK, map[string]any{"repositories": out})
}
