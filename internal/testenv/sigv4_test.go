package testenv

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSigV4VerifierPassesAWSTestSuite(t *testing.T) {
	// AWS's published Signature Version 4 test suite: the example key,
	// region us-east-1, service "service", 2015-08-30T12:36:00Z.
	const secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	cases := []struct{ name, target, want string }{
		{"get-vanilla", "/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{"get-vanilla-query-order-key-case", "/?Param2=value2&Param1=value1", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "https://example.amazonaws.com"+c.target, nil)
			r.Header.Set("X-Amz-Date", "20150830T123600Z")
			got := SigV4Signature(secret, "20150830", "us-east-1", "service", "20150830T123600Z",
				CanonicalRequest(r, []string{"host", "x-amz-date"}, nil))
			if got != c.want {
				t.Errorf("signature %s, AWS publishes %s", got, c.want)
			}
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature="+c.want)
			v := &SigV4Verifier{Region: "us-east-1", Service: "service", Keys: map[string]AWSKey{"AKIDEXAMPLE": {Secret: secret}},
				Now: func() time.Time { return time.Date(2015, 8, 30, 12, 40, 0, 0, time.UTC) }}
			if err := v.Verify(r); err != nil {
				t.Errorf("the verifier refuses AWS's own example: %v", err)
			}
			r.Header.Set("X-Amz-Date", "20150830T123601Z")
			if err := v.Verify(r); err == nil {
				t.Error("the verifier accepts a request changed after signing")
			}
		})
	}
}
