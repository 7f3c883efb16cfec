package txloop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// DefaultBaseURL is where a sidecar listens unless told otherwise.
const DefaultBaseURL = "http://127.0.0.1:7480"

// maxAnswerBytes bounds what the client reads of an answer (a list of transactions can be large).
const maxAnswerBytes = 64 << 20

// Client calls one txloop sidecar. It is safe for concurrent use.
type Client struct {
	base       string
	token      string
	httpClient *http.Client
	userAgent  string
}

// Option configures a [Client].
type Option func(*Client) error

// WithBaseURL sets the sidecar's URL (default [DefaultBaseURL]), e.g. "http://127.0.0.1:7480" or
// the url of the sidecar's ready line.
func WithBaseURL(baseURL string) Option {
	return func(c *Client) error {
		u, err := url.Parse(baseURL)
		if err != nil {
			return fmt.Errorf("txloop: base URL %q: %w", baseURL, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("txloop: base URL %q is not an http:// or https:// URL", baseURL)
		}
		c.base = strings.TrimRight(u.String(), "/")
		return nil
	}
}

// WithToken sends "authorization: Bearer <token>" on every call (the sidecar's --token-file or
// TXLOOP_SIDECAR_TOKEN). The token is never part of an error.
func WithToken(token string) Option {
	return func(c *Client) error {
		c.token = token
		return nil
	}
}

// WithTokenFile reads the bearer token from a file (surrounding white space removed), as the
// sidecar's --token-file does.
func WithTokenFile(path string) Option {
	return func(c *Client) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("txloop: token file: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
		if c.token == "" {
			return fmt.Errorf("txloop: token file %s is empty", path)
		}
		return nil
	}
}

// WithHTTPClient sets the http.Client the calls go through (default: one of its own, with no
// overall timeout: each call's context bounds it).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("txloop: WithHTTPClient(nil)")
		}
		c.httpClient = hc
		return nil
	}
}

// WithUserAgent sets the user-agent header of the calls.
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		c.userAgent = ua
		return nil
	}
}

// New makes a client of the sidecar at [DefaultBaseURL], or the one [WithBaseURL] names.
func New(opts ...Option) (*Client, error) {
	c := &Client{base: DefaultBaseURL, httpClient: &http.Client{}, userAgent: "txloop-go"}
	for _, opt := range opts {
		if err := opt(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// BaseURL returns the sidecar's URL.
func (c *Client) BaseURL() string { return c.base }

// call is one request: body (nil for none) as JSON, the answer decoded into out (nil to discard)
// when its status is 2xx, a *Problem otherwise.
func (c *Client) call(ctx context.Context, op, method, path string, query url.Values, body, out interface{}) error {
	_, err := c.callStatus(ctx, op, method, path, query, "application/json", body, out)
	return err
}

func (c *Client) callStatus(ctx context.Context, op, method, path string, query url.Values, contentType string, body, out interface{}) (int, error) {
	if ctx == nil {
		return 0, fmt.Errorf("txloop: %s: nil context", op)
	}
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("txloop: %s: %w", op, err)
		}
		reader = bytes.NewReader(b)
	}
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return 0, fmt.Errorf("txloop: %s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("content-type", contentType)
	}
	req.Header.Set("accept", "application/json, application/problem+json")
	if c.userAgent != "" {
		req.Header.Set("user-agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("authorization", "Bearer "+c.token)
	}
	res, err := c.httpClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("txloop: %s: %w", op, err)
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes))
	if err != nil {
		return res.StatusCode, fmt.Errorf("txloop: %s: reading the answer (HTTP %d): %w", op, res.StatusCode, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.StatusCode, parseProblem(res.StatusCode, res.Header.Get("content-type"), answer)
	}
	if out != nil {
		if len(bytes.TrimSpace(answer)) == 0 {
			return res.StatusCode, fmt.Errorf("txloop: %s: empty answer (HTTP %d)", op, res.StatusCode)
		}
		if err := json.Unmarshal(answer, out); err != nil {
			return res.StatusCode, fmt.Errorf("txloop: %s: the answer (HTTP %d) does not parse: %w", op, res.StatusCode, err)
		}
	}
	return res.StatusCode, nil
}

// escape makes a path segment of an id.
func escape(id string) string { return url.PathEscape(id) }

// Health asks GET /healthz: nil when the sidecar's process is up.
func (c *Client) Health(ctx context.Context) error {
	return c.call(ctx, "health", http.MethodGet, "/healthz", nil, nil, nil)
}

// Ready asks GET /readyz: nil when etcd is reachable and the sidecar's informer synced; a 503
// *[Problem] otherwise.
func (c *Client) Ready(ctx context.Context) error {
	return c.call(ctx, "ready", http.MethodGet, "/readyz", nil, nil, nil)
}
