{#- The recall model's train samples, for the users the sample keeps. -#}
{{ recall_samples_of_split('train') }}
