#!/bin/bash
# smoke-tests.sh
BASE_URL=${1:-"https://api.example.com"}
FAILURES=0
echo "Running smoke tests against $BASE_URL"
# Health check
echo -n "Health check... "
if curl -sf "$BASE_URL/health/ready" > /dev/null; then
echo "✓"
else
echo "✗"
((FAILURES++))
fi
# API endpoint
echo -n "API response... "
RESPONSE=$(curl -sf "$BASE_URL/api/v1/status")
if [ $? -eq 0 ] && echo "$RESPONSE" | jq -e '.status == "ok"' > /dev/null; then
echo "✓"
else
echo "✗"
((FAILURES++))
fi
# Auth flow
echo -n "Auth endpoint... "
if curl -sf -X POST "$BASE_URL/auth/health" > /dev/null; then
echo "✓"
else
echo "✗"
((FAILURES++))
fi
if [ $FAILURES -gt 0 ]; then
echo "FAILED: $FAILURES smoke tests failed"
exit 1
fi
echo "All smoke tests passed"
