package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// webDriver drives headless Chromium through chromedriver (the W3C
// WebDriver protocol over HTTP): enough to type into a page and read it.
type webDriver struct {
	t       *testing.T
	base    string
	session string
}

func startWebDriver(t *testing.T) *webDriver {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command("chromedriver", fmt.Sprintf("--port=%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &webDriver{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	for i := 0; ; i++ {
		if resp, err := http.Get(d.base + "/status"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatal("chromedriver did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var s struct {
		SessionID string `json:"sessionId"`
	}
	d.call("POST", "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": "/usr/bin/chromium",
			"args":   []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,860"},
		},
	}}}, &s)
	d.session = "/session/" + s.SessionID
	t.Cleanup(func() { d.call("DELETE", d.session, nil, nil) })
	return d
}

func (d *webDriver) call(method, path string, in, out any) {
	d.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.base+path, body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		d.t.Fatalf("webdriver %s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		var v struct {
			Value json.RawMessage `json:"value"`
		}
		json.Unmarshal(data, &v)
		if err := json.Unmarshal(v.Value, out); err != nil {
			d.t.Fatalf("webdriver %s %s: %v: %s", method, path, err, data)
		}
	}
}

func (d *webDriver) open(url string) {
	d.call("POST", d.session+"/url", map[string]string{"url": url}, nil)
}

func (d *webDriver) element(css string) string {
	var el map[string]string
	d.call("POST", d.session+"/element", map[string]string{"using": "css selector", "value": css}, &el)
	for _, id := range el {
		return id
	}
	d.t.Fatalf("no element %s", css)
	return ""
}

func (d *webDriver) typeInto(css, text string) {
	d.call("POST", d.session+"/element/"+d.element(css)+"/value", map[string]string{"text": text}, nil)
}

func (d *webDriver) click(css string) {
	d.call("POST", d.session+"/element/"+d.element(css)+"/click", map[string]any{}, nil)
}

func (d *webDriver) source() string {
	var s string
	d.call("GET", d.session+"/source", nil, &s)
	return s
}

// waitSource waits until the page holds every string in want.
func (d *webDriver) waitSource(want ...string) string {
	d.t.Helper()
	var src string
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		src = d.source()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(src, w)
		}
		if ok {
			return src
		}
	}
	d.t.Fatalf("the page never showed %q:\n%s", want, src)
	return ""
}
