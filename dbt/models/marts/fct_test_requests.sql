{#- The test split (day D) as training reads it. -#}
{{ labelled_requests_of_split('test') }}
