{#- The test split as training reads it: requests with at least one labelled candidate. -#}

with

requests as (

    select * from {{ ref('int_requests__split') }}
    where split = 'test'

),

final as (

    select * from requests
    where n_labelled > 0

)

select * from final
