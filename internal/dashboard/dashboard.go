// Package dashboard is serve's web pages: the deploys, one deploy as it
// happens, a service's DORA figures and the judge's own record. Pages are
// rendered on the server with html/template; the styles, the one script
// (live updates) and the icon are embedded files, so the pages need
// nothing from another host and no inline script or style.
package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/deploywatch/deploywatch/internal/dora"
	"github.com/deploywatch/deploywatch/internal/store"
)

// History is the part of the store the pages read.
type History interface {
	ListDeploys(ctx context.Context, q store.Query) (store.Page, error)
	Deploy(ctx context.Context, id string) (store.Deploy, error)
	Events(ctx context.Context, id string, afterSeq int64) ([]store.Event, error)
	Labels(ctx context.Context, ids []string) (map[string][]store.Label, error)
	Services(ctx context.Context) ([]store.Service, error)
}

// Options are what the pages need from serve.
type Options struct {
	History History
	// DORA computes a service's figures ("" for every service) over a
	// window ending now.
	DORA func(ctx context.Context, service, environment string, window time.Duration) (dora.Report, error)
	// MayRead reports whether a request may read the history (a token in
	// its cookie, or reads open to all).
	MayRead func(r *http.Request) bool
	// ReadToken reports whether a token presented at the login form may
	// read.
	ReadToken func(token string) bool
	Logger    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// CookieName holds a read token for the pages, set by the login form.
const CookieName = "deploywatch_token"

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Dashboard serves the pages.
type Dashboard struct {
	o     Options
	pages map[string]*template.Template
}

// New parses the templates.
func New(o Options) (*Dashboard, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{o: o, pages: map[string]*template.Template{}}
	for _, page := range []string{"deploys", "deploy", "service", "judge", "login", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/parts.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard template %s: %w", page, err)
		}
		d.pages[page] = t
	}
	return d, nil
}

// Register adds the pages to mux.
func (d *Dashboard) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFiles, "static")
	files := http.FileServerFS(static)
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, files)))
	mux.Handle("GET /favicon.ico", http.RedirectHandler("/static/favicon.svg", http.StatusMovedPermanently))
	mux.HandleFunc("GET /{$}", d.reader(d.deploys))
	mux.HandleFunc("GET /deploys/{id}", d.reader(d.deploy))
	mux.HandleFunc("GET /services/{service}", d.reader(d.service))
	mux.HandleFunc("GET /judge", d.reader(d.judge))
	mux.HandleFunc("GET /login", d.loginForm)
	mux.HandleFunc("POST /login", d.login)
	mux.HandleFunc("POST /logout", d.logout)
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}

// reader sends a visitor who may not read to the login form.
func (d *Dashboard) reader(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !d.o.MayRead(r) {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r)
	}
}

// page is what every page's layout needs.
type page struct {
	Title string
	// Nav is the current section: deploys, judge, or "".
	Nav string
	// LoggedIn shows the log-out button.
	LoggedIn bool
	// Now is when the page was rendered.
	Now time.Time
}

func (d *Dashboard) page(r *http.Request, title, nav string) page {
	_, err := r.Cookie(CookieName)
	return page{Title: title, Nav: nav, LoggedIn: err == nil, Now: d.o.Now()}
}

// render executes a page (or, with block, one of its blocks: the part a
// live page fetches again) into a buffer first, so that a failing
// template is a clean 500, never half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name, block string, data any) {
	var buf bytes.Buffer
	t := d.pages[name]
	var err error
	if block != "" {
		err = t.ExecuteTemplate(&buf, block, data)
	} else {
		err = t.Execute(&buf, data)
	}
	if err != nil {
		d.o.Logger.Error("rendering a page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorPage struct {
	page
	Status  int
	Message string
}

// fail renders an error page; a store that does not answer is 503.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusServiceUnavailable, "The history store did not answer; try again in a moment."
	var bad badRequest
	switch {
	case errors.Is(err, store.ErrNotFound):
		status, msg = http.StatusNotFound, "There is no such deploy in the history."
	case errors.As(err, &bad):
		status, msg = http.StatusBadRequest, bad.Error()
	default:
		d.o.Logger.Warn("a page could not read the history", "path", r.URL.Path, "err", err)
	}
	d.render(w, r, status, "error", "", errorPage{page: d.page(r, http.StatusText(status), ""), Status: status, Message: msg})
}

// badRequest is a query parameter the page cannot use.
type badRequest struct{ field, msg string }

func (b badRequest) Error() string { return b.field + ": " + b.msg }

type loginPage struct {
	page
	Next  string
	Error string
}

func (d *Dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "login", "", loginPage{page: d.page(r, "Sign in", ""), Next: safeNext(r.URL.Query().Get("next"))})
}

// login takes a token with the read scope and keeps it in a cookie that
// scripts cannot read and other sites do not send.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		d.render(w, r, http.StatusBadRequest, "login", "", loginPage{page: d.page(r, "Sign in", ""), Error: "The form could not be read."})
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	next := safeNext(r.PostForm.Get("next"))
	if token == "" || !d.o.ReadToken(token) {
		d.render(w, r, http.StatusUnauthorized, "login", "", loginPage{page: d.page(r, "Sign in", ""), Next: next,
			Error: "That token is not valid, or it does not have the read scope."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int((12 * time.Hour).Seconds())})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, MaxAge: -1, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}
