"""Names the Mirror API fixes on the wire, outside any JSON body.

They live in ``protocol`` (not in the server) so a client or a checker for mirrors
written in any language can use them without loading aiohttp's server.
"""

#: The header a mirror sends with every answer: the API key StackState checks.
API_KEY_HEADER = "X-MIRROR-API-KEY"

#: The four methods' URL paths, all POST.
CONNECTION_PATH = "/api/connection"
FIELD_NAMES_PATH = "/api/field/name"
FIELD_VALUES_PATH = "/api/field/value"
METRICS_PATH = "/api/metric"

#: The methods in the order StackState's wizard calls them.
METHOD_PATHS = (CONNECTION_PATH, FIELD_NAMES_PATH, FIELD_VALUES_PATH, METRICS_PATH)
