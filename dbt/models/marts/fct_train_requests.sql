{#- The train split (days D-train_days .. D-1) as training reads it. -#}
{{ labelled_requests_of_split('train') }}
