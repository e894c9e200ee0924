{{ encoded_requests(source('warehouse', 'features'), request_day='ds', spec_day='ds') }}
