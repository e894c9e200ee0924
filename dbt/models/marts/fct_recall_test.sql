{#- The recall model's test samples, for the users the sample keeps. -#}
{{ recall_samples_of_split('test') }}
