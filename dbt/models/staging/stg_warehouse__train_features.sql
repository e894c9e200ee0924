{{ encoded_requests(source('warehouse', 'train_features'), request_day='request_ds', spec_day='ds') }}
